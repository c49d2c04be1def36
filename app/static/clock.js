// Times on the pages in the viewer's own time zone, labelled with it ("10:02 GMT+1"), the zone's name in
// full on hover. A page writes each moment as <time datetime="ISO 8601" data-clock="KIND">, in UTC and
// labelled so until this runs; KIND is "minute" (10:02, the default), "time" (10:02:03) or "datetime"
// (2026-12-07 10:02:03). Live pages call switchboardClock.show() on the times they draw.
(function () {
  "use strict";

  var clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" };
  var FORMATS = {
    minute: new Intl.DateTimeFormat(undefined, clock),
    time: new Intl.DateTimeFormat(undefined, Object.assign({ second: "2-digit" }, clock)),
    datetime: new Intl.DateTimeFormat(undefined, Object.assign({ year: "numeric", month: "2-digit", day: "2-digit",
                                                                  second: "2-digit" }, clock)),
  };
  var zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || "";

  function show(time) {
    var moment = Date.parse(time.dateTime);
    if (isNaN(moment)) return;
    var format = FORMATS[time.dataset.clock] || FORMATS.minute;
    time.textContent = format.format(new Date(moment));
    time.title = "your time zone" + (zoneName ? ": " + zoneName : "");
  }

  // A <time> element for ISO, in the viewer's time zone (what live pages draw).
  function at(iso, kind) {
    var time = document.createElement("time");
    if (!iso) {
      time.textContent = "—";
      return time;
    }
    time.dateTime = iso;
    time.dataset.clock = kind || "minute";
    show(time);
    return time;
  }

  function showAll(root) {
    (root || document).querySelectorAll("time[data-clock]").forEach(show);
  }

  window.switchboardClock = { show: show, at: at, showAll: showAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { showAll(); });
  else showAll();
})();
