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
    // A site that turns the CAPTCHA on defines window.switchboardCaptcha() to return its widget's answer.
    if (form.dataset.captcha !== "on") return "";
    return typeof window.switchboardCaptcha === "function" ? String(window.switchboardCaptcha() || "") : "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    callButton.disabled = true;
    say("Connecting…");
    fetch("/call/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ name: form.elements.name.value, reason: form.elements.reason.value,
                             captcha: captchaAnswer() })
    }).then(function (response) {
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
