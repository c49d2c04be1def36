// Keeps a page live: follows its server-sent stream of snapshots and, when
// the stream is refused or keeps failing, polls the JSON snapshot instead.
// Shared by the board, the wallboard and the call page; each page draws its own snapshots.
(function () {
  "use strict";

  // When the server refuses the stream (it caps live streams so Twilio's
  // webhooks always find a free thread) or the stream keeps failing, the page
  // polls the JSON snapshot instead and tries the stream again now and then:
  // first after FIRST_RETRY_MS (the place of a page its viewer has just left
  // is free again within a second of the server's next look), then every
  // STREAM_RETRY_MS.
  var POLL_MS = 3000, FIRST_RETRY_MS = 3000, STREAM_RETRY_MS = 30000, RECONNECT_GRACE_MS = 10000;

  // options: streamUrl, snapshotUrl, show(snapshot), say(text, ok), pollMs (optional), and
  // texts.live / texts.polling (texts.reconnecting / texts.unreachable /
  // texts.gone are optional). Returns { stop() } so a page can stop following for good.
  function follow(options) {
    var show = options.show, say = options.say, texts = options.texts;
    var RECONNECTING = texts.reconnecting || "Reconnecting…";
    var UNREACHABLE = texts.unreachable || "Cannot reach the server; trying again every few seconds…";
    var source = null, pollTimer = null, streamTimer = null, graceTimer = null;
    var polling = false, inFlight = false, stopped = false, retried = false;

    function poll() {
      if (inFlight) return;
      inFlight = true;
      fetch(options.snapshotUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("snapshot answered " + response.status);
          return response.json();
        })
        .then(function (snapshot) {
          if (!polling) return; // the stream came back, or following stopped, while this was on its way
          // Say first, so show() may have the last word (e.g. "The call has ended.").
          say(texts.polling, true);
          show(snapshot);
        })
        .catch(function () {
          if (polling) say(UNREACHABLE, false);
        })
        .then(function () { inFlight = false; });
    }

    function stopPolling() {
      polling = false;
      clearInterval(pollTimer);
      clearTimeout(streamTimer);
      pollTimer = streamTimer = null;
    }

    function stop() {
      stopped = true;
      clearTimeout(graceTimer);
      graceTimer = null;
      stopPolling();
      if (source) source.close();
      source = null;
    }

    function fallBack() {
      clearTimeout(graceTimer);
      graceTimer = null;
      if (source) source.close();
      source = null;
      if (stopped) return;
      if (!polling) {
        polling = true;
        say(texts.polling, true);
        poll();
        pollTimer = setInterval(poll, options.pollMs || POLL_MS);
      }
      if (window.EventSource && !streamTimer) {
        streamTimer = setTimeout(connect, retried ? STREAM_RETRY_MS : FIRST_RETRY_MS);
        retried = true;
      }
    }

    function live() {
      clearTimeout(graceTimer);
      graceTimer = null;
      stopPolling();
      retried = false;
      say(texts.live, true);
    }

    function connect() {
      streamTimer = null;
      if (stopped) return;
      var stream = new EventSource(options.streamUrl);
      source = stream;
      // Events from a stream this page has already let go of are ignored.
      stream.addEventListener("open", function () { if (stream === source) live(); });
      stream.addEventListener("snapshot", function (message) {
        if (stream !== source) return;
        live();
        show(JSON.parse(message.data));
      });
      // What the page shows no longer exists (a call's records were removed).
      stream.addEventListener("gone", function () {
        if (stream !== source) return;
        stop();
        say(texts.gone || "This page's subject no longer exists.", false);
      });
      stream.addEventListener("error", function () {
        if (stream !== source) return;
        // CLOSED: the server refused the stream (a 503 when streams are capped)
        // and EventSource gives up for good. CONNECTING: the stream ended, as it
        // does every minute, and EventSource reconnects by itself; poll only if
        // that takes too long.
        if (stream.readyState === EventSource.CLOSED) {
          fallBack();
        } else if (!graceTimer && !polling) {
          say(RECONNECTING, false);
          graceTimer = setTimeout(fallBack, RECONNECT_GRACE_MS);
        }
      });
    }

    if (window.EventSource) connect();
    else fallBack();
    return { stop: stop };
  }

  // A page whose durations count in the browser (the board, the wallboard): follows ROOT's data-stream
  // (polling its data-snapshot), draws each snapshot with DRAW, ticks ROOT's durations every second on the
  // server's clock (dom.js), and says how it follows in ROOT's [data-live-status].
  function followTicking(root, draw) {
    var status = root.querySelector("[data-live-status]");
    var clockOffset = 0; // server time minus browser time, so durations do not depend on the browser's clock

    function tick() {
      window.switchboardDom.tick(root, Date.now() + clockOffset);
    }

    tick();
    setInterval(tick, 1000);
    return follow({
      streamUrl: root.dataset.stream,
      snapshotUrl: root.dataset.snapshot,
      show: function (snapshot) {
        if (snapshot.server_time) clockOffset = Date.parse(snapshot.server_time) - Date.now();
        draw(snapshot);
        tick();
      },
      say: function (text, ok) {
        if (!status) return;
        status.textContent = text;
        status.classList.toggle("is-down", !ok);
      },
      texts: {
        live: "Live: updates as calls change.",
        polling: "Polling: updates every few seconds (live updates are busy).",
      },
    });
  }

  window.switchboardLive = { follow: follow, followTicking: followTicking };
})();
