// What the live pages draw their snapshots with: elements whose data is only
// ever placed with textContent, never parsed as HTML; and redraw(), which
// keeps the viewer's place (focus, what they typed, scroll) across a redraw.
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


  // What names a focusable element across a redraw, which makes new elements: its id, or its form's
  // address with its own name, value and words, or a link's address and words.
  function keyOf(node) {
    if (!node || node === document.body || !node.tagName) return null;
    if (node.id) return "#" + node.id;
    var form = node.form || node.closest("form");
    var words = (node.textContent || "").trim();
    if (form) return [form.getAttribute("action"), node.tagName, node.name, node.value, words].join("|");
    if (node.tagName === "A") return ["A", node.getAttribute("href"), words].join("|");
    return null;
  }

  function findByKey(root, key) {
    if (key.charAt(0) === "#") return document.getElementById(key.slice(1));
    var candidates = root.querySelectorAll("a, button, input, select, textarea");
    for (var i = 0; i < candidates.length; i += 1) {
      if (keyOf(candidates[i]) === key) return candidates[i];
    }
    return null;
  }

  // Run DRAW (which replaces parts of ROOT) and keep the viewer's place: the page's and each scrolled
  // box's scroll position, the focused control (found again by keyOf when it was redrawn), and what was
  // typed and selected in it.
  function redraw(root, draw) {
    var active = document.activeElement;
    var key = root.contains(active) ? keyOf(active) : null;
    var typing = active && "value" in active && typeof active.selectionStart === "number";
    var typed = typing ? { value: active.value, start: active.selectionStart, end: active.selectionEnd } : null;
    var scrollX = window.scrollX, scrollY = window.scrollY;
    var boxes = Array.prototype.map.call(root.querySelectorAll(".table-wrap, [data-scroll-keep]"), function (box) {
      return { box: box, top: box.scrollTop, left: box.scrollLeft };
    });
    draw();
    boxes.forEach(function (kept) {
      if (!kept.box.isConnected) return;
      kept.box.scrollTop = kept.top;
      kept.box.scrollLeft = kept.left;
    });
    if (window.scrollX !== scrollX || window.scrollY !== scrollY) window.scrollTo(scrollX, scrollY);
    if (key && document.activeElement !== active) {
      var again = findByKey(root, key);
      if (again) {
        again.focus({ preventScroll: true });
        if (typed && "value" in again && again.value !== typed.value) again.value = typed.value;
        if (typed && typeof again.setSelectionRange === "function") {
          try {
            again.setSelectionRange(typed.start, typed.end);
          } catch (error) {
            // Inputs such as type=email have no selection.
          }
        }
      }
    }
  }

  window.switchboardDom = { el: el, badge: badge, duration: duration, tick: tick, redraw: redraw };
})();
