// A call's page: follows the call through server-sent snapshots while it is live.
// Data is only ever placed with textContent, never parsed as HTML.
(function () {
  "use strict";

  var root = document.querySelector(".call-page[data-stream]");
  if (!root) return;
  var status = root.querySelector("[data-live-status]");

  // Typing an outside destination chooses it, and choosing an agent or a queue
  // clears it, so the form never names two targets.
  var targetChoice = root.querySelector("#target");
  var outsideText = root.querySelector("#outside");
  if (targetChoice && outsideText && targetChoice.querySelector('option[value="outside"]')) {
    outsideText.addEventListener("input", function () {
      if (outsideText.value.trim()) targetChoice.value = "outside";
    });
    targetChoice.addEventListener("change", function () {
      if (targetChoice.value && targetChoice.value !== "outside") outsideText.value = "";
    });
  }

  var el = window.switchboardDom.el, badge = window.switchboardDom.badge, clockAt = window.switchboardClock.at;

  function emptyRow(columns, text) {
    var row = el("tr", null, "empty");
    var td = el("td", text);
    td.colSpan = columns;
    row.appendChild(td);
    return row;
  }

  function drawEvent(event) {
    var row = el("tr");
    var td = el("td", null, "num");
    td.appendChild(clockAt(event.at, "time"));
    row.appendChild(td);
    row.appendChild(el("td", event.label));
    row.appendChild(el("td", event.by, "by"));
    var detail = el("td", null, "detail");
    event.detail.forEach(function (pair) {
      var item = el("span");
      item.appendChild(el("b", pair[0].replace(/_/g, " ")));
      item.appendChild(document.createTextNode(" " + pair[1]));
      detail.appendChild(item);
    });
    row.appendChild(detail);
    return row;
  }

  function drawLine(line) {
    var item = el("li", null, "from-" + line.speaker);
    item.appendChild(el("span", line.speaker, "speaker"));
    item.appendChild(document.createTextNode(" "));
    item.appendChild(clockAt(line.at, "time"));
    item.appendChild(el("p", line.text));
    return item;
  }

  function actionForm(call, transfer, action, label, className) {
    var form = el("form");
    form.method = "post";
    form.action = "/calls/" + encodeURIComponent(call.call_sid) + "/transfers/" + transfer.id + "/" + action;
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = root.dataset.csrf;
    form.appendChild(token);
    var button = el("button", label, className);
    button.type = "submit";
    form.appendChild(button);
    return form;
  }

  function drawSummary(summary) {
    var box = el("div", null, "summary" + (summary.source === "fallback" ? " is-fallback" : ""));
    box.appendChild(el("h4", "Summary"));
    if (!summary.ready) {
      box.appendChild(el("p", "The summary is being written…", "muted"));
      return box;
    }
    box.appendChild(el("blockquote", summary.spoken, "spoken"));
    if (summary.fields.length) {
      var list = el("dl", null, "fields");
      summary.fields.forEach(function (pair) {
        var item = el("div");
        item.appendChild(el("dt", pair[0]));
        item.appendChild(el("dd", pair[1]));
        list.appendChild(item);
      });
      box.appendChild(list);
    }
    var source = el("p", null, "source");
    source.appendChild(badge(summary.source_label, "source-" + summary.source));
    var meta = [summary.provider, summary.model, summary.latency_ms === null ? null : summary.latency_ms + " ms"]
      .filter(function (part) { return part !== null && part !== undefined && part !== ""; });
    if (meta.length) source.appendChild(document.createTextNode(" " + meta.join(" · ")));
    if (summary.error) {
      source.appendChild(el("br"));
      source.appendChild(el("span", "Why: " + summary.error, "muted"));
    }
    box.appendChild(source);
    return box;
  }

  function drawTransfer(data, transfer) {
    var card = el("article", null, "transfer");
    card.id = "transfer-" + transfer.id;
    card.dataset.transferId = String(transfer.id);
    var head = el("header");
    var mode = transfer.mode.charAt(0).toUpperCase() + transfer.mode.slice(1);
    head.appendChild(el("h3", mode + " transfer to " + transfer.target));
    var state = badge(transfer.state_label, "state-" + transfer.state);
    state.setAttribute("data-transfer-state", "");
    head.appendChild(state);
    card.appendChild(head);
    var facts = el("p", null, "muted");
    facts.appendChild(document.createTextNode("From " + (transfer.from_agent || "—") + " · started "));
    facts.appendChild(clockAt(transfer.started_at, "time"));
    var after = [(transfer.requested_by ? " by " + transfer.requested_by : "") + " (" + transfer.trigger + ")"];
    if (transfer.answered_by) after.push("answered by " + transfer.answered_by);
    facts.appendChild(document.createTextNode(after.join(" · ")));
    if (transfer.ended_at) {
      facts.appendChild(document.createTextNode(" · ended "));
      facts.appendChild(clockAt(transfer.ended_at, "time"));
    }
    if (transfer.final && transfer.end_reason) facts.appendChild(document.createTextNode(" · " + transfer.end_reason));
    card.appendChild(facts);
    if (transfer.notes) {
      var notes = el("p", null, "notes");
      notes.appendChild(el("b", transfer.requested_by ? "Notes from " + transfer.requested_by + ":" : "Notes:"));
      notes.appendChild(document.createTextNode(" " + transfer.notes));
      card.appendChild(notes);
    }
    card.appendChild(drawSummary(transfer.summary));
    if (data.may_act && (transfer.can_complete || transfer.can_cancel)) {
      var actions = el("div", null, "transfer-actions");
      if (transfer.can_complete) actions.appendChild(actionForm(data.call, transfer, "complete", "Complete"));
      if (transfer.can_three_way) actions.appendChild(actionForm(data.call, transfer, "three-way", "Three-way", "secondary"));
      if (transfer.can_swap) actions.appendChild(actionForm(data.call, transfer, "swap", "Swap", "secondary"));
      if (transfer.can_cancel) actions.appendChild(actionForm(data.call, transfer, "cancel", "Cancel", "secondary"));
      card.appendChild(actions);
    }
    return card;
  }

  function show(data) {
    var call = data.call;
    var state = root.querySelector("[data-call-state]");
    state.textContent = call.state_label;
    state.className = "badge state-" + call.state;
    ["queue", "agent", "ivr_reason"].forEach(function (name) {
      var fact = root.querySelector('[data-fact="' + name + '"]');
      if (fact) fact.textContent = call[name] || "—";
    });
    ["started", "ended"].forEach(function (name) {
      var fact = root.querySelector('[data-fact="' + name + '"]');
      var iso = call[name + "_at"];
      if (fact && (fact.firstChild || {}).dateTime !== iso) fact.replaceChildren(clockAt(iso, "time"));
    });

    var timeline = root.querySelector("[data-timeline]");
    var rows = data.timeline.map(drawEvent);
    timeline.replaceChildren.apply(timeline, rows.length ? rows : [emptyRow(4, "No events yet.")]);

    var transcript = root.querySelector("[data-transcript]");
    var lines = data.transcript.map(drawLine);
    transcript.replaceChildren.apply(transcript, lines.length ? lines : [el("li", "Nothing transcribed yet.", "muted empty")]);

    var transfers = root.querySelector("[data-transfers]");
    var cards = data.transfers.slice().reverse().map(function (transfer) { return drawTransfer(data, transfer); });
    transfers.replaceChildren.apply(transfers, cards.length ? cards : [el("p", "No transfers on this call.", "muted empty")]);

    var form = root.querySelector("[data-transfer-form]");
    if (form && !form.querySelector(".alert")) form.hidden = !data.can_transfer;
    if (!call.live) {
      // Nothing more will happen: close the stream and stop polling for good.
      following.stop();
      say("The call has ended.", true);
    }
  }

  function say(text, ok) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("is-down", !ok);
  }

  // Live updates, or polling while streams are busy: see live.js.
  // show() stops following once the call has ended.
  var following = window.switchboardLive.follow({
    streamUrl: root.dataset.stream,
    snapshotUrl: root.dataset.stream.replace(/\/stream$/, "/snapshot"),
    show: function (snapshot) { window.switchboardDom.redraw(root, function () { show(snapshot); }); },
    say: say,
    texts: {
      live: "Live: this page follows the call.",
      polling: "Polling: this page refreshes every few seconds (live updates are busy).",
      gone: "This call is no longer open to you, or its records were removed: the page no longer follows it.",
    },
  });
})();
