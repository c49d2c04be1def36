// The live board: re-draws its tables from server-sent snapshots.
// Data is only ever placed with textContent, never parsed as HTML.
(function () {
  "use strict";

  var root = document.querySelector("[data-stream]");
  if (!root) return;

  var el = window.switchboardDom.el, badge = window.switchboardDom.badge;
  var PHASES = ["ivr", "queue", "talk", "hold"];

  function link(href, text) {
    var a = el("a", text);
    a.href = href;
    return a;
  }

  function cell(row, content, className) {
    var td = el("td", null, className);
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content === null || content === undefined || content === "" ? "—" : content;
    row.appendChild(td);
    return td;
  }

  function fill(name, items, columns, draw, total) {
    var body = root.querySelector('[data-rows="' + name + '"]');
    var rows = items.map(draw);
    if (!rows.length) {
      var empty = el("tr", null, "empty");
      var td = el("td", { calls: "No live calls.", agents: "No agents on the roster.", transfers: "No transfers under way." }[name]);
      td.colSpan = columns;
      empty.appendChild(td);
      rows = [empty];
    }
    body.replaceChildren.apply(body, rows);
    var count = root.querySelector('[data-count="' + name + '"]');
    if (count) count.textContent = String(total === undefined ? items.length : total);
  }

  // The board lists the longest-running calls only (BOARD_CALLS_SHOWN): say how many it leaves out.
  function sayHowManyMore(shown, total) {
    var more = root.querySelector("[data-calls-more]");
    if (!more) return;
    more.hidden = total <= shown;
    more.querySelector("[data-calls-shown]").textContent = String(shown);
    more.querySelector("[data-calls-total]").textContent = String(total);
  }

  function drawCall(call) {
    var row = el("tr");
    row.dataset.callSid = call.call_sid;
    cell(row, link(call.href, call.caller || "unknown number"));
    cell(row, call.queue);
    cell(row, call.agent);
    var state = cell(row, badge(call.state_label, "state-" + call.state));
    if (call.transfer_state) {
      state.appendChild(document.createTextNode(" "));
      state.appendChild(badge("transfer " + call.transfer_state, "state-transfer"));
    }
    cell(row, "–", "num").dataset.since = call.started_at;
    // Each phase's time: its seconds so far, counting on from phase_since in the phase the call is in.
    PHASES.forEach(function (phase) {
      var td = cell(row, "–", "num");
      td.dataset.phase = phase;
      td.dataset.seconds = String(call.times[phase]);
      if (call.phase === phase) td.dataset.countingFrom = call.phase_since;
    });
    var actions = cell(row, link(call.href, "Open"), "actions");
    if (call.transferable) {
      actions.appendChild(document.createTextNode(" · "));
      actions.appendChild(link(call.href + "#transfer-form", "Transfer"));
    }
    return row;
  }

  // A board button's form about one agent: POST to /agents/<extension>/<action>, with the CSRF token,
  // and the button's own name and value when it has them (Set away: presence=away).
  function agentForm(extension, action, text, name, value) {
    var form = el("form", null, "inline");
    form.method = "post";
    form.action = "/agents/" + encodeURIComponent(extension) + "/" + action;
    var token = el("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = root.dataset.csrf;
    form.appendChild(token);
    var button = el("button", text, "secondary");
    button.type = "submit";
    if (name) {
      button.name = name;
      button.value = value;
    }
    form.appendChild(button);
    return form;
  }

  function since(iso) {
    var span = el("span", "–", "duration");
    span.dataset.since = iso;
    return span;
  }

  function drawAgent(agent) {
    var row = el("tr");
    row.dataset.extension = agent.extension;
    var name = cell(row, agent.name + " ", "name");
    name.appendChild(el("span", agent.extension, "muted"));
    var presence = cell(row, badge(agent.presence, "presence-" + agent.presence));
    presence.dataset.presence = "";
    if (agent.presence_since) {
      presence.appendChild(document.createTextNode(" since "));
      presence.appendChild(window.switchboardClock.at(agent.presence_since, "minute"));
    }
    var activity = cell(row, agent.activity_label);
    activity.dataset.activity = "";
    if (agent.activity_since) {
      activity.appendChild(document.createTextNode(" "));
      activity.appendChild(since(agent.activity_since));
    }
    if (agent.activity === "wrap_up") activity.appendChild(agentForm(agent.extension, "end-wrap-up", "End wrap-up"));
    cell(row, agent.current_call ? link(agent.current_call_href, agent.current_call_caller) : "—");
    cell(row, String(agent.missed_in_row), "num");
    var actions = cell(row, "", "actions");
    actions.textContent = "";
    agent.presence_choices.forEach(function (choice) {
      actions.appendChild(agentForm(agent.extension, "presence", "Set " + choice, "presence", choice));
    });
    return row;
  }

  function drawTransfer(transfer) {
    var row = el("tr");
    row.dataset.transferId = String(transfer.id);
    var sid = link(transfer.href + "#transfer-" + transfer.id, transfer.call_sid);
    sid.className = "sid";
    sid.title = transfer.call_sid; // cut short on screen, whole on hover
    cell(row, sid);
    cell(row, transfer.from_agent);
    cell(row, transfer.target);
    cell(row, transfer.mode);
    cell(row, badge(transfer.state_label, "state-" + transfer.state));
    return row;
  }

  // Live updates, or polling while streams are busy, with the durations ticking: see live.js.
  // A redraw keeps the viewer's place: scroll, focus and what they typed (dom.js).
  window.switchboardLive.followTicking(root, function (snapshot) {
    window.switchboardDom.redraw(root, function () {
      window.switchboardFigures.drawStrip(root, snapshot.queues);
      fill("calls", snapshot.calls, 10, drawCall, snapshot.calls_total);
      sayHowManyMore(snapshot.calls.length, snapshot.calls_total);
      fill("agents", snapshot.agents, 6, drawAgent);
      fill("transfers", snapshot.transfers, 5, drawTransfer);
    });
  });
})();
