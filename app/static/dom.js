// What the live pages draw their snapshots with: elements whose data is only
// ever placed with textContent, never parsed as HTML.
// Shared by the board and the call page.
(function () {
  "use strict";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function badge(text, className) {
    return el("span", text, "badge " + className);
  }

  // Whole seconds as m:ss, or h:mm:ss from an hour.
  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = (h && m < 10 ? "0" : "") + m, ss = (s < 10 ? "0" : "") + s;
    return (h ? h + ":" : "") + mm + ":" + ss;
  }

  // Counts the durations under ROOT at NOW (ms, the server's clock): an element with data-since shows the time
  // since that moment; one with data-seconds shows those seconds, plus the time since data-counting-from when
  // it has one (the stretch under way).
  function tick(root, now) {
    root.querySelectorAll("[data-since]").forEach(function (node) {
      var since = Date.parse(node.dataset.since);
      if (!isNaN(since)) node.textContent = duration((now - since) / 1000);
    });
    root.querySelectorAll("[data-seconds]").forEach(function (node) {
      var seconds = Number(node.dataset.seconds), from = Date.parse(node.dataset.countingFrom || "");
      if (!isNaN(from)) seconds += Math.max(0, (now - from) / 1000);
      node.textContent = duration(seconds);
    });
  }

  window.switchboardDom = { el: el, badge: badge, duration: duration, tick: tick };
})();
