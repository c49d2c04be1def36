// The call page's Listen, Whisper and Barge: the supervisor's browser in the call's LiveKit room.
// The server issues the token (listen: subscribe only, hidden) and grants each mode on the connected
// participant; this page says who may hear its microphone before it publishes it. A whisper is
// allowed to the agent's participant alone: LiveKit then refuses the track to every other subscriber,
// the caller's phone included (livekit-server pkg/rtc/uptrackmanager.go, hasPermissionLocked).
(function () {
  "use strict";

  const panel = document.querySelector("[data-supervise]");
  if (!panel) return;
  const root = document.querySelector(".call-page");
  const csrf = root.dataset.csrf;
  const listenUrl = panel.dataset.listenUrl;
  const status = panel.querySelector("[data-supervise-status]");
  const mediaStatus = panel.querySelector("[data-supervise-media]");
  const modeButtons = Array.from(panel.querySelectorAll("[data-supervise-mode]"));
  const stopButton = panel.querySelector("[data-supervise-stop]");
  // Read by the browser tests: what was handed to Room.connect, and the mode now.
  const hook = (window.switchboardSupervise = { lastConnect: null, mode: null, connectError: null });
  const session = { room: null, agent: null, busy: false };
  const SAID = {
    listen: "Listening: you hear the call; nobody hears you.",
    whisper: "Whispering: only the agent hears you.",
    barge: "Barged in: the caller and the agent hear you.",
  };

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("is-failed", Boolean(failed));
  }

  function sayMedia(text, failed) {
    mediaStatus.textContent = text;
    mediaStatus.classList.toggle("is-failed", Boolean(failed));
  }

  function draw() {
    modeButtons.forEach((button) => {
      const mode = button.dataset.superviseMode;
      button.setAttribute("aria-pressed", String(hook.mode === mode));
      button.disabled = session.busy || (mode !== "listen" && hook.mode === null) || hook.mode === mode;
    });
    stopButton.disabled = session.busy || hook.mode === null;
  }

  async function post(url, fields) {
    const form = new FormData();
    form.append("csrf_token", csrf);
    Object.entries(fields || {}).forEach(([name, value]) => form.append(name, value));
    const response = await fetch(url, {
      method: "POST", body: form, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf },
    });
    let body = {};
    try { body = await response.json(); } catch (error) { body = {}; }
    if (!response.ok) throw new Error(body.error || `the service answered ${response.status}`);
    return body;
  }

  function connected() {
    const lk = window.LivekitClient;
    return Boolean(session.room && lk && session.room.state === lk.ConnectionState.Connected);
  }

  async function connect(pass) {
    const lk = window.LivekitClient;
    const room = new lk.Room({ adaptiveStream: false, dynacast: false });
    session.room = room;
    room.on(lk.RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === "audio") document.body.appendChild(track.attach());
    });
    room.on(lk.RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((element) => element.remove()));
    hook.lastConnect = { url: pass.url, token: pass.token, room: pass.room, at: Date.now() };
    sayMedia(`Audio: connecting to room ${pass.room}…`);
    try {
      await room.connect(pass.url, pass.token);
      hook.connectError = null;
      sayMedia(`Audio connected: room ${pass.room}.`);
    } catch (error) {
      hook.connectError = String(error && error.message ? error.message : error);
      sayMedia(`Audio connection failed: ${hook.connectError}`, true);
    }
  }

  // Who may subscribe to this page's microphone, set before it is published: a track published first
  // would be subscribed by everyone until the permission arrived.
  async function allowListeners(mode) {
    if (!connected()) return;
    const local = session.room.localParticipant;
    if (mode === "whisper") {
      local.setTrackSubscriptionPermissions(false, [{ participantIdentity: session.agent, allowAll: true }]);
    } else {
      local.setTrackSubscriptionPermissions(true, []);
    }
  }

  async function switchTo(mode) {
    if (mode === "listen" && hook.mode === null) {
      const pass = await post(listenUrl);
      session.agent = pass.agent_identity;
      hook.mode = "listen";
      draw();
      await connect(pass);
      return;
    }
    if (mode !== "listen") await allowListeners(mode);
    const granted = await post(`${listenUrl}/mode`, { mode: mode });
    session.agent = granted.agent_identity;
    hook.mode = mode;
    if (!connected()) return;
    if (mode === "listen") {
      await session.room.localParticipant.setMicrophoneEnabled(false);
    } else {
      await session.room.localParticipant.setMicrophoneEnabled(true);
      sayMedia("Audio connected, microphone on.");
    }
  }

  async function act(work) {
    session.busy = true;
    draw();
    try {
      await work();
      say(hook.mode ? SAID[hook.mode] : "Not listening.");
    } catch (error) {
      say(`Not done: ${error.message}`, true);
    } finally {
      session.busy = false;
      draw();
    }
  }

  modeButtons.forEach((button) => {
    button.addEventListener("click", () => act(() => switchTo(button.dataset.superviseMode)));
  });

  stopButton.addEventListener("click", () => act(async () => {
    await post(`${listenUrl}/stop`);
    hook.mode = null;
    const room = session.room;
    session.room = null;
    if (room) await room.disconnect();
    sayMedia("");
  }));

  draw();
})();
