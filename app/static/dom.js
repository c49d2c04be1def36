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

  window.switchboardDom = { el: el, badge: badge };
})();
