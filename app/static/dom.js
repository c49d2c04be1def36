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

  window.switchboardDom = { el: el, badge: badge, redraw: redraw };
})();
