// Progressive enhancement for the admin console: no build step, nothing required.
// Without JavaScript every page is complete and has a refresh link. With it, regions marked
// data-live are refreshed in place when the hub reports a change over server-sent events
// (/console/events), or every few seconds where EventSource is missing.
(function () {
  "use strict";
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.fetch || !window.DOMParser) { return; }
  var status = document.querySelector("[data-live-status]");
  var paused = false, busy = false, again = false;

  function say(text) { if (status) { status.textContent = text; } }

  function refresh(quietly) {
    if (paused) { return; }
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          // Never pull a form out from under someone using it.
          if (region.contains(document.activeElement) && document.activeElement !== document.body) { return; }
          var fresh = doc.getElementById(region.id);
          if (!fresh) { return; }
          var known = {};
          region.querySelectorAll("[data-key]").forEach(function (el) { known[el.getAttribute("data-key")] = true; });
          region.innerHTML = fresh.innerHTML;
          region.querySelectorAll("[data-key]").forEach(function (el) {
            if (!known[el.getAttribute("data-key")]) { el.classList.add("fresh"); }
          });
        });
        if (quietly !== true) { say("Updated " + new Date().toISOString().slice(11, 19) + " UTC"); }
      })
      .catch(function () { say("Live updates interrupted; use the refresh link."); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var toggle = document.querySelector("[data-live-toggle]");
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      say(paused ? "Live updates paused." : "Live updates on.");
      if (!paused) { refresh(); }
    });
  }

  if (window.EventSource) {
    var source = new EventSource("/console/events");
    source.addEventListener("changed", refresh);
    source.addEventListener("open", function () {
      say("Live updates on.");
      // What changed between this page (or the last stream) and the stream's start is in no
      // event: fetch the page once more (the hub reads its baseline before it says open).
      refresh(true);
    });
  } else {
    window.setInterval(refresh, 3000);
  }
})();
