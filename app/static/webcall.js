// The public call page: ask the service for a token, then call its TwiML App with Twilio's Voice SDK.
// Twilio then asks the service's voice webhook with From=client:<identity>, as for any caller.
(function () {
  "use strict";
  var form = document.getElementById("web-call");
  var statusLine = document.getElementById("call-status");
  var hangUp = document.getElementById("hang-up");
  var callButton = document.getElementById("call-button");
  var keypad = document.getElementById("keypad");
  var current = null;
  var page = { device: null, identity: null, call: null };
  // For the page's own test: what the page did, never the token.
  window.switchboardCall = page;

  function say(words) { statusLine.textContent = words; }

  function ended() {
    current = null;
    page.call = null;
    hangUp.hidden = true;
    keypad.hidden = true;
    callButton.disabled = false;
    say("Call ended.");
  }

  function captchaAnswer() {
    // The CAPTCHA provider's widget (WEB_CALL_CAPTCHA) puts the visitor's answer in a hidden field of this form
    // once they pass: null when the page has no CAPTCHA, "" until they pass.
    var field = form.dataset.captchaField;
    if (!field) return null;
    var input = form.elements[field];
    return input && input.value ? String(input.value) : "";
  }

  function resetCaptcha() {
    // An answer is good for one verification: after each token request the widget asks afresh.
    var widget = form.dataset.captchaObject ? window[form.dataset.captchaObject] : null;
    if (widget && typeof widget.reset === "function") {
      try { widget.reset(); } catch (error) { /* a widget that cannot reset keeps its state */ }
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var answer = captchaAnswer();
    if (answer === "") {
      say("Please complete the check above, then press Call.");
      return;
    }
    callButton.disabled = true;
    say("Connecting…");
    fetch("/call/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ name: form.elements.name.value, reason: form.elements.reason.value,
                             captcha: answer || "" })
    }).then(function (response) {
      if (answer !== null) resetCaptcha();
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
        return body;
      });
    }).then(function (body) {
      page.identity = body.identity;
      var device = new Twilio.Device(body.token, { closeProtection: true });
      page.device = device;
      return device.connect({ params: {} });
    }).then(function (call) {
      current = call;
      page.call = call;
      hangUp.hidden = false;
      keypad.hidden = false;
      say("Calling…");
      call.on("accept", function () { say("Connected. Use the keypad to answer the menu."); });
      call.on("disconnect", ended);
      call.on("cancel", ended);
      call.on("error", function (error) { say("The call failed: " + (error.message || error)); });
    }).catch(function (error) {
      if (answer !== null) resetCaptcha();  // again, if the request itself failed before an answer
      callButton.disabled = false;
      say("Could not call: " + error.message);
    });
  });

  hangUp.addEventListener("click", function () {
    if (current) current.disconnect();
    ended();
  });

  keypad.addEventListener("click", function (event) {
    var key = event.target.dataset && event.target.dataset.key;
    if (key && current) current.sendDigits(key);
  });
})();
