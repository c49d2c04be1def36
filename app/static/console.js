// The agent console: follows its live stream (data-stream, when the service has a live process; live.js)
// or else polls /console/state, posts the agent's choices, and keeps the
// browser in the LiveKit room the database says the agent is in. Everything a caller,
// an agent or the LLM said is written with textContent, never as HTML.
(function () {
  "use strict";

  const POLL_MS = 1500;
  const MEDIA_RETRY_MS = 10000;
  const root = document.getElementById("console");
  if (!root) return;

  const csrf = root.dataset.csrf;
  const stateUrl = root.dataset.stateUrl;
  const streamUrl = root.dataset.stream;
  let following = null; // the live stream, when the page follows one (live.js polls when it is refused)
  const tokenUrl = root.dataset.tokenUrl;

  const alerts = window.switchboardAlerts;

  // Read by the browser tests: what the page last tried, since no media server runs there.
  const hook = (window.switchboardConsole = {
    lastState: null,
    tokenFetches: 0,
    lastConnect: null,
    connectError: null,
    connectedRoom: null,
    alerts: alerts.state,
  });

  const $ = (selector) => root.querySelector(selector);
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  const panel = (name) => root.querySelector(`[data-panel="${name}"]`);
  const button = (action) => root.querySelector(`[data-action="${action}"]`);
  const liveStatus = $("[data-live-status]");
  const errorBox = $("[data-console-error]");
  const messageBox = $("[data-console-message]");
  const mediaStatus = $("[data-media-status]");
  const audioBox = $("[data-audio]");

  let state = null;
  let polledAt = Date.now();
  let pollTimer = null;

  function setText(name, value) {
    const element = field(name);
    if (element) element.textContent = value == null ? "" : String(value);
  }

  function show(element, visible) {
    if (element) element.hidden = !visible;
  }

  function showError(text) {
    errorBox.textContent = text;
    show(errorBox, Boolean(text));
    if (text) show(messageBox, false);
  }

  function showMessage(text) {
    messageBox.textContent = text;
    show(messageBox, Boolean(text));
    if (text) show(errorBox, false);
  }

  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  }

  // --- talking to the service ----------------------------------------------------------

  async function readJson(response) {
    const type = response.headers.get("Content-Type") || "";
    if (response.redirected || !type.includes("application/json")) {
      throw new Error("You are signed out. Reload the page to sign in again.");
    }
    return response.json();
  }

  function applyState(body) {
    state = body;
    polledAt = Date.now();
    hook.lastState = body;
    render();
    syncMedia();
  }

  function say(text, ok) {
    liveStatus.textContent = text;
    liveStatus.classList.toggle("is-down", !ok);
  }

  // One look at the state now; without a live stream, the next one in POLL_MS.
  async function poll() {
    clearTimeout(pollTimer);
    try {
      const response = await fetch(stateUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await readJson(response);
      if (!response.ok) throw new Error(body.error || `The service answered ${response.status}.`);
      applyState(body);
      if (!following) say("Up to date", true);
    } catch (error) {
      say(`Not updating: ${error.message} Retrying…`, false);
    }
    if (!following) pollTimer = setTimeout(poll, POLL_MS);
  }

  async function post(url, fields) {
    const form = new FormData();
    form.append("csrf_token", csrf);
    for (const [name, value] of Object.entries(fields || {})) form.append(name, value);
    try {
      const response = await fetch(url, {
        method: "POST",
        body: form,
        headers: { Accept: "application/json", "X-CSRFToken": csrf },
        credentials: "same-origin",
      });
      const body = await readJson(response);
      if (!response.ok) {
        showError(`Not done: ${body.error || "the service refused."}`);
        return false;
      }
      showMessage(body.message || "Done.");
      return true;
    } catch (error) {
      showError(`Not done: ${error.message}`);
      return false;
    } finally {
      poll();
    }
  }

  // --- drawing the state ---------------------------------------------------------------

  // A summary into BOX (the offer's, or the one kept on screen during the call).
  function renderSummary(box, summary) {
    const source = box.querySelector('[data-field="summary-source"]');
    const fields = box.querySelector('[data-field="summary-fields"]');
    const spoken = box.querySelector('[data-field="summary-spoken"]');
    fields.replaceChildren();
    if (!summary || !summary.ready) {
      source.textContent = "being prepared";
      source.className = "badge";
      spoken.textContent = "The summary is being written. It appears here in a few seconds.";
      return;
    }
    source.textContent = summary.fallback ? "Fallback: written without the LLM" : "Written by the LLM";
    source.className = `badge ${summary.fallback ? "source-fallback" : "source-llm"}`;
    spoken.textContent = summary.spoken;
    for (const item of summary.fields) {
      const term = document.createElement("dt");
      term.textContent = item.label;
      const value = document.createElement("dd");
      value.textContent = item.value;
      fields.append(term, value);
    }
  }

  // The transcript's lines into the list NAME, kept scrolled to the latest line unless the agent scrolled up.
  function renderTranscript(name, lines) {
    const list = field(name);
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    const items = (lines || []).map((line) => {
      const item = document.createElement("li");
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = line.speaker;
      item.append(speaker, document.createTextNode(line.text));
      return item;
    });
    if (!items.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "Nothing transcribed yet.";
      items.push(empty);
    }
    const same = list.children.length === items.length &&
      items.every((item, index) => list.children[index].textContent === item.textContent);
    if (same) return;
    list.replaceChildren(...items);
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  function offerWords(offer) {
    if (offer.kind === "transfer") {
      return { title: "Incoming transfer",
               body: `From ${offer.from_agent || "a colleague"}: ${offer.caller || "unknown number"}` };
    }
    if (offer.kind === "outbound" || offer.kind === "callback") {
      return { title: "Outbound call", body: offer.about || `Accept to call ${offer.caller}` };
    }
    return { title: "Incoming call", body: `${offer.caller || "Unknown number"} · ${offer.queue || "no queue"}` +
      (offer.reason ? ` · ${offer.reason}` : "") };
  }

  function renderCountdown() {
    const offer = state && state.offer;
    const countdown = field("offer-countdown");
    if (!offer) {
      countdown.textContent = "";
      return;
    }
    const left = Math.max(0, Math.ceil(offer.ring_seconds_left - (Date.now() - polledAt) / 1000));
    countdown.textContent = left > 0 ? `Rings for ${left} s more` : "The ring is over: it goes to the next agent.";
    countdown.classList.toggle("is-short", left <= 5);
  }

  function renderOffer(offer) {
    show(panel("offer"), Boolean(offer));
    if (!offer) return;
    const transfer = offer.kind === "transfer";
    const outbound = offer.kind === "outbound" || offer.kind === "callback";
    const titles = {
      transfer: `Incoming transfer from ${offer.from_agent || "a colleague"}`,
      outbound: `Outbound call to ${offer.caller}: accept to dial it`,
      callback: `${offer.about || "A callback"} Accept to call them now.`,
    };
    setText("offer-title", titles[offer.kind] || (offer.about ? `Incoming call. ${offer.about}` : "Incoming call"));
    setText("offer-caller-label", outbound ? "Customer" : "Caller");
    setText("offer-caller", offer.caller || "unknown number");
    setText("offer-queue", offer.queue || "no queue");
    setText("offer-reason", offer.reason || "no reason given");
    setText("offer-from", offer.from_agent);
    setText("offer-mode", offer.mode === "blind" ? "Blind: the caller comes straight to you" : "Warm: you talk to them first");
    setText("offer-notes", offer.notes ? `Notes from ${offer.notes_by || offer.from_agent}: ${offer.notes}` : "");
    setText("offer-ringing", `Offered ${clock(offer.ringing_seconds)} ago.`);
    renderTranscript("offer-transcript", offer.transcript);
    for (const element of root.querySelectorAll('[data-only="transfer"]')) show(element, transfer);
    for (const element of root.querySelectorAll('[data-only="browser"]')) show(element, offer.in_browser);
    for (const element of root.querySelectorAll('[data-only="phone"]')) show(element, !offer.in_browser);
    if (transfer) renderSummary(panel("offer").querySelector("[data-summary]"), offer.summary);
  }

  function transferLine(call) {
    const transfer = call.transfer;
    if (!transfer) return "";
    if (transfer.role === "from") {
      const target = transfer.target || "the target";
      const words = {
        requested: "Transfer requested: the caller is on hold.",
        waiting: `Everyone at ${target} is busy: the transfer waits there for the first one free; the caller is on hold. Cancel to go back to the caller.`,
        dialing: `Calling ${target}: the caller is on hold.`,
        whispering: `${target} is hearing the summary.`,
        consulting: `You are talking to ${target}; the caller is on hold. Complete or cancel the transfer.`,
      };
      return words[transfer.state] || `Transfer ${transfer.state}.`;
    }
    if (transfer.state === "consulting") {
      return `Consulting with ${transfer.from_agent}: the caller is on hold until they complete the transfer.`;
    }
    return `Transfer from ${transfer.from_agent}: ${transfer.state}.`;
  }

  function renderCall(call) {
    show(panel("call"), Boolean(call));
    const canTransfer = Boolean(call && call.has_caller && !call.transfer && call.status === "connected");
    show(panel("transfer"), canTransfer);
    root.classList.toggle("has-side", canTransfer);
    if (!call) return;
    setText("call-caller-label", call.direction === "outbound" ? "Customer" : "Caller");
    setText("call-caller", call.caller || "unknown number");
    setText("call-queue", call.queue || "no queue");
    setText("call-reason", call.reason || "no reason given");
    setText("call-room", call.room || (call.leg_status === "on_hold" ? "on hold" : "none"));
    setText("call-transfer", call.status === "dialing" ? `Calling ${call.caller}: it is ringing.` : transferLine(call));
    const transfer = call.transfer;
    show(button("complete"), Boolean(transfer && transfer.can_complete));
    show(button("three-way"), Boolean(transfer && transfer.can_three_way));
    show(button("swap"), Boolean(transfer && transfer.can_swap));
    show(button("cancel"), Boolean(transfer && transfer.can_cancel));
    show(button("hangup"), call.in_browser);
    const kept = $("[data-call-summary]");
    show(kept, Boolean(call.summary));
    if (call.summary) renderSummary(kept, call.summary);
    setText("call-notes", call.notes ? `Notes from ${call.notes_by}: ${call.notes}` : "");
    renderTranscript("call-transcript", call.transcript);
    if (!call.in_browser) mediaStatus.textContent = "You are on this call by phone.";
  }

  function renderDuration() {
    if (state && state.call) {
      setText("call-duration", clock(state.call.duration_seconds + (Date.now() - polledAt) / 1000));
    }
  }

  function render() {
    const agent = state.agent;
    setText("agent-name", agent.name);
    setText("agent-extension", `extension ${agent.extension}${agent.browser ? " · in the browser" : " · on a SIP phone"}`);
    for (const element of root.querySelectorAll("[data-presence]")) {
      element.setAttribute("aria-pressed", String(element.dataset.presence === agent.presence));
    }
    setText("activity", `You are ${agent.presence}; ${agent.activity.replace("_", " ")}.`);
    renderOffer(state.offer);
    alerts.follow(state.offer, state.offer ? offerWords(state.offer) : null);
    renderCall(state.call);
    renderDuration();
    renderCountdown();
    const wrapping = agent.activity === "wrap_up";
    show(panel("wrap-up"), wrapping);
    if (wrapping) {
      setText("wrap-up-text", `Your next call is offered in ${agent.wrap_up_seconds_left} s, or when you are ready.`);
      const select = $('[data-field="dispositions"]');
      if (select.options.length === 1) {
        for (const code of agent.dispositions) select.appendChild(new Option(code, code));
      }
    }
    show(panel("idle"), !state.offer && !state.call && !wrapping);
    setText("idle-text", agent.presence === "available"
      ? "You are available: calls and transfers offered to you appear here."
      : `You are ${agent.presence}: set yourself available to take calls.`);
  }

  // --- live audio: follow the room the database names ------------------------------------

  const media = { room: null, roomName: null, busy: false, failedRoom: null, failedAt: 0 };

  function setMedia(text, failed) {
    mediaStatus.textContent = text;
    mediaStatus.classList.toggle("is-failed", Boolean(failed));
  }

  async function leaveRoom() {
    const room = media.room;
    media.room = null;
    media.roomName = null;
    hook.connectedRoom = null;
    audioBox.replaceChildren();
    if (room) {
      try {
        await room.disconnect();
      } catch (error) {
        // Leaving a room that already dropped us is not worth showing.
      }
    }
  }

  async function syncMedia() {
    const call = state && state.call;
    const wanted = call && call.in_browser ? call.room : null;
    if (media.busy || wanted === media.roomName) return;
    if (wanted && wanted === media.failedRoom && Date.now() - media.failedAt < MEDIA_RETRY_MS) return;
    media.busy = true;
    try {
      await leaveRoom();
      if (!wanted) {
        if (call && call.in_browser) setMedia("Audio: on hold.");
        return;
      }
      await joinRoom(wanted);
    } finally {
      media.busy = false;
    }
  }

  async function joinRoom(wanted) {
    setMedia(`Audio: getting a pass for room ${wanted}…`);
    try {
      hook.tokenFetches += 1;
      const response = await fetch(tokenUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const pass = await readJson(response);
      if (!response.ok) throw new Error(pass.error || `the service answered ${response.status}`);
      const lk = window.LivekitClient;
      if (!lk) throw new Error("the audio library did not load (run npm ci && npm run build on the server)");
      const room = new lk.Room({ adaptiveStream: false, dynacast: false });
      room.on(lk.RoomEvent.TrackSubscribed, (track) => {
        if (track.kind === "audio") audioBox.append(track.attach());
      });
      room.on(lk.RoomEvent.TrackUnsubscribed, (track) => {
        for (const element of track.detach()) element.remove();
      });
      room.on(lk.RoomEvent.Disconnected, () => {
        if (media.room === room) {
          media.room = null;
          media.roomName = null;
          hook.connectedRoom = null;
          setMedia("Audio disconnected. Reconnecting…", true);
        }
      });
      hook.lastConnect = { url: pass.url, token: pass.token, room: pass.room, at: Date.now() };
      hook.connectError = null;
      setMedia(`Audio: connecting to room ${pass.room}…`);
      await room.connect(pass.url, pass.token);
      media.room = room;
      media.roomName = wanted;
      hook.connectedRoom = pass.room;
      setMedia(`Audio connected: room ${pass.room}. Allowing the microphone…`);
      await room.localParticipant.setMicrophoneEnabled(true);
      setMedia(`Audio connected: room ${pass.room}, microphone on.`);
      media.failedRoom = null;
    } catch (error) {
      const reason = (error && error.message) || String(error);
      hook.connectError = reason;
      media.failedRoom = wanted;
      media.failedAt = Date.now();
      if (!media.room) media.roomName = null;
      setMedia(`Audio connection failed: ${reason}. Retrying in ${MEDIA_RETRY_MS / 1000} s.`, true);
    }
  }

  // --- the agent's buttons -------------------------------------------------------------------

  function readAloud() {
    if (!("speechSynthesis" in window)) {
      showError("This browser cannot read aloud.");
      return;
    }
    const offer = state && state.offer;
    if (!offer) return;
    const parts = offer.kind === "transfer"
      ? [`Transfer from ${offer.from_agent}.`, offer.summary && offer.summary.ready ? offer.summary.spoken : "The summary is not ready yet."]
      : [`Call from ${offer.caller || "an unknown number"}.`, `Queue ${offer.queue || "none"}.`, `Reason: ${offer.reason || "none given"}.`];
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(new SpeechSynthesisUtterance(parts.join(" ")));
  }

  function showAlertStatus(now) {
    const text = field("alerts-status");
    text.textContent = now.text;
    text.classList.toggle("is-blocked", now.blocked);
  }

  root.addEventListener("click", (event) => {
    alerts.unlockSound(); // any click may let the ring sound
    if (event.target.closest('[data-action="alerts"]')) {
      alerts.turnOn().then(showAlertStatus);
      return;
    }
    const presence = event.target.closest("[data-presence]");
    if (presence) {
      post("/console/presence", { presence: presence.dataset.presence });
      return;
    }
    const action = event.target.closest("[data-action]");
    if (!action || !state) return;
    const name = action.dataset.action;
    if (name === "read-aloud") readAloud();
    else if (name === "accept" && state.offer) post("/console/accept", { leg_id: state.offer.leg_id });
    else if (name === "decline" && state.offer) post("/console/decline", { leg_id: state.offer.leg_id });
    else if (name === "hangup" && state.call) post("/console/hangup", { leg_id: state.call.leg_id });
    else if (name === "complete" && state.call && state.call.transfer) {
      post("/console/transfer/complete", { transfer_id: state.call.transfer.id });
    } else if (name === "cancel" && state.call && state.call.transfer) {
      post("/console/transfer/cancel", { transfer_id: state.call.transfer.id });
    } else if ((name === "three-way" || name === "swap") && state.call && state.call.transfer) {
      post(`/console/transfer/${name}`, { transfer_id: state.call.transfer.id });
    }
  });

  const transferForm = $("[data-transfer-form]");
  // An extension or queue, or an outside destination: typing in one clears the other.
  const targetText = transferForm.elements.target;
  const outsideText = transferForm.elements.outside;
  targetText.addEventListener("input", () => {
    if (targetText.value.trim()) outsideText.value = "";
  });
  outsideText.addEventListener("input", () => {
    if (outsideText.value.trim()) targetText.value = "";
  });

  transferForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const data = new FormData(form);
    const done = await post("/console/transfer", {
      target: data.get("target") || "",
      outside: data.get("outside") || "",
      mode: data.get("mode") || "warm",
      notes: data.get("notes") || "",
    });
    if (done) form.reset();
  });

  const dialForm = $("[data-dial-form]");
  if (dialForm) {
    dialForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(dialForm);
      const done = await post("/console/call", { number: data.get("number") || "", reason: data.get("reason") || "" });
      if (done) dialForm.reset();
    });
  }

  const wrapUpForm = $("[data-wrap-up-form]");
  wrapUpForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(wrapUpForm);
    const done = await post("/console/ready", { disposition: data.get("disposition") || "", notes: data.get("notes") || "" });
    if (done) wrapUpForm.reset();
  });

  setInterval(() => {
    renderDuration();
    renderCountdown();
  }, 1000);
  showAlertStatus(alerts.status());
  if (streamUrl && window.EventSource && window.switchboardLive) {
    following = window.switchboardLive.follow({
      streamUrl: streamUrl,
      snapshotUrl: stateUrl,
      pollMs: POLL_MS,
      show: applyState,
      say: say,
      texts: { live: "Up to date", polling: "Up to date (polling: live updates are busy)" },
    });
  } else {
    poll();
  }
})();
