/* django_jobs admin dashboard: fetch the page body again every few seconds and swap it
   in; paused while the tab is hidden, slower after errors. No library, no CDN. */
(function () {
  "use strict";
  function start() {
    var box = document.getElementById("dj-dashboard");
    if (!box) return;
    var url = box.getAttribute("data-refresh-url");
    var every = parseInt(box.getAttribute("data-refresh-ms"), 10) || 5000;
    var delay = every;
    var timer = null;
    var busy = false;

    function schedule(ms) {
      clearTimeout(timer);
      if (!document.hidden) timer = setTimeout(refresh, ms);
    }

    function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      box.setAttribute("aria-busy", "true");
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (response.redirected || !response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          delay = every;
        })
        .catch(function () {
          delay = Math.min(delay * 2, 60000); // the server is away: ask less often
        })
        .then(function () {
          busy = false;
          box.setAttribute("aria-busy", "false");
          schedule(delay);
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) clearTimeout(timer);
      else refresh(); // back on the tab: fresh numbers now, then the usual pace
    });
    schedule(delay);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
