// The wallboard: each queue's figures in large type, re-drawn from server-sent snapshots as the board is.
(function () {
  "use strict";

  var root = document.querySelector("[data-stream]");
  if (!root) return;
  window.switchboardLive.followTicking(root, function (snapshot) {
    window.switchboardFigures.drawStrip(root, snapshot.queues);
  });
})();
