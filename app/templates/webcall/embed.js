// Switchboard's call button for another website: the call page in an iframe that may use the microphone.
// Add <script src="{{ page }}/embed.js" data-switchboard-call async></script> where the button should go;
// the site's origin must be listed in WEB_CALL_ORIGINS.
(function () {
  var here = document.currentScript;
  var frame = document.createElement("iframe");
  frame.src = {{ page | tojson }};
  frame.allow = "microphone";
  frame.title = "Call us";
  frame.style.border = "0";
  frame.style.width = "100%";
  frame.style.height = "420px";
  here.parentNode.insertBefore(frame, here.nextSibling);
})();
