// The queue strip of the board and the wallboard: each queue's figures, re-drawn from a snapshot's "queues"
// (board.figures_view). Data is only ever placed with textContent, never parsed as HTML.
(function () {
  "use strict";

  var el = window.switchboardDom.el, duration = window.switchboardDom.duration;

  // [figure key, title]; the longest wait counts in the page from longest_waiting_since.
  var FIGURES = [
    ["waiting", "Waiting now"], ["longest_wait", "Longest wait"], ["average_answer", "Average answer"],
    ["service_level", "Service level"], ["answered", "Answered"], ["abandoned", "Abandoned"],
    ["voicemail", "Voicemail"], ["callbacks", "Callbacks"],
  ];

  function value(queue, key) {
    if (key === "average_answer") {
      return queue.average_answer_seconds === null ? "–" : duration(queue.average_answer_seconds);
    }
    if (key === "service_level") return queue.service_level === null ? "–" : queue.service_level + "%";
    if (key === "longest_wait") return "–";
    return String(queue[key]);
  }

  function card(queue) {
    var article = el("article", null, "queue-figures");
    article.dataset.queue = queue.queue;
    article.appendChild(el("h3", queue.queue));
    var list = el("dl");
    FIGURES.forEach(function (figure) {
      var pair = el("div"), title = el("dt", figure[1]), dd = el("dd", value(queue, figure[0]));
      if (figure[0] === "service_level") {
        title.appendChild(document.createTextNode(" "));
        title.appendChild(el("span", "(" + queue.service_level_seconds + " s)", "muted"));
      }
      dd.dataset.figure = figure[0];
      if (figure[0] === "longest_wait" && queue.longest_waiting_since) dd.dataset.since = queue.longest_waiting_since;
      pair.appendChild(title);
      pair.appendChild(dd);
      list.appendChild(pair);
    });
    article.appendChild(list);
    return article;
  }

  // Re-draws the strip under ROOT from QUEUES.
  function drawStrip(root, queues) {
    var strip = root.querySelector("[data-strip]");
    if (!strip) return;
    var cards = queues.map(card);
    if (!cards.length) cards = [el("p", "No queues on the roster.", "muted")];
    strip.replaceChildren.apply(strip, cards);
  }

  window.switchboardFigures = { drawStrip: drawStrip };
})();
