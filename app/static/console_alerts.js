// The console's alerts for a call or transfer offered: a ring made in the browser (Web Audio API, no
// sound file), a desktop notification (Notification API, asked for on the agent's click), and the
// tab's title ("(1) Incoming call — Switchboard"), put back once the offer is over.
(function () {
  "use strict";

  const RING_EVERY_MS = 3000;
  const TEXTS = {
    off: "Turn on alerts to hear a ring and get a desktop notification for each call offered to you.",
    on: "Alerts on: a ring, a desktop notification and the tab's title for each call offered.",
    blocked: "Desktop notifications are blocked for this site: allow them in your browser's site settings " +
      "(the icon by the address) to be alerted while this tab is hidden. The ring and the tab's title still alert you.",
    unsupported: "This browser cannot show desktop notifications: the ring and the tab's title still alert you.",
    silent: "This browser cannot play the ring: the desktop notification and the tab's title still alert you.",
  };

  const originalTitle = document.title;
  const state = {
    audio: null, // the AudioContext, made on the agent's first click (browsers allow sound only after one)
    ringTimer: null,
    offerKey: null,
    notification: null,
    rings: 0, // rings sounded (read by the browser tests)
    notified: 0,
  };

  function notificationsSupported() {
    return "Notification" in window;
  }

  function status() {
    if (notificationsSupported() && Notification.permission === "denied") return { text: TEXTS.blocked, blocked: true };
    if (!notificationsSupported()) return { text: TEXTS.unsupported, blocked: false };
    if (!window.AudioContext && !window.webkitAudioContext) return { text: TEXTS.silent, blocked: false };
    if (Notification.permission === "granted" && state.audio) return { text: TEXTS.on, blocked: false };
    return { text: TEXTS.off, blocked: false };
  }

  // The AudioContext may only start on a user gesture: every click in the console unlocks it.
  function unlockSound() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!state.audio) state.audio = new Context();
    if (state.audio.state === "suspended") state.audio.resume();
  }

  // One ring: two bursts of the 440 + 480 Hz tone telephones ring with, 0.4 s each.
  function ringOnce() {
    state.rings += 1;
    const audio = state.audio;
    if (!audio || audio.state !== "running") return;
    const gain = audio.createGain();
    gain.connect(audio.destination);
    const start = audio.currentTime;
    for (const burst of [0, 0.6]) {
      gain.gain.setValueAtTime(0, start + burst);
      gain.gain.linearRampToValueAtTime(0.12, start + burst + 0.02);
      gain.gain.setValueAtTime(0.12, start + burst + 0.38);
      gain.gain.linearRampToValueAtTime(0, start + burst + 0.4);
    }
    for (const frequency of [440, 480]) {
      const tone = audio.createOscillator();
      tone.frequency.value = frequency;
      tone.connect(gain);
      tone.start(start);
      tone.stop(start + 1.0);
    }
  }

  function notify(title, body, key) {
    if (!notificationsSupported() || Notification.permission !== "granted") return;
    try {
      state.notification = new Notification(title, { body: body, tag: key, requireInteraction: true });
      state.notification.onclick = () => {
        window.focus();
        state.notification.close();
      };
      state.notified += 1;
    } catch (error) {
      // Some browsers allow notifications only from a service worker: the ring and the title remain.
      state.notification = null;
    }
  }

  function stop() {
    clearInterval(state.ringTimer);
    state.ringTimer = null;
    if (state.notification) state.notification.close();
    state.notification = null;
    state.offerKey = null;
    document.title = originalTitle;
  }

  // OFFER: the console state's offer (or null). A new offer rings, notifies and changes the title; the end
  // of the offer stops them all.
  function follow(offer, words) {
    const key = offer ? `offer-${offer.leg_id}` : null;
    if (key === state.offerKey) return;
    stop();
    if (!offer) return;
    state.offerKey = key;
    document.title = `(1) ${words.title} — Switchboard`;
    if (offer.in_browser) {
      ringOnce();
      state.ringTimer = setInterval(ringOnce, RING_EVERY_MS);
    }
    notify(words.title, words.body, key);
  }

  // The agent's click on "Turn on call alerts": sound unlocked, notifications asked for; what to say after.
  async function turnOn() {
    unlockSound();
    if (notificationsSupported() && Notification.permission === "default") {
      try {
        await Notification.requestPermission();
      } catch (error) {
        // An old browser's callback form: the status below says where things stand.
      }
    }
    return status();
  }

  window.switchboardAlerts = { follow: follow, turnOn: turnOn, unlockSound: unlockSound, status: status, state: state };
})();
