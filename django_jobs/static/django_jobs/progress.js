/* django_jobs admin: running jobs' progress bars (list and detail pages) update
   themselves every two seconds while the tab is visible, and stop once their job
   finished. No library, no CDN. */
(function () {
  "use strict";
  var EVERY = 2000;
  function start() {
    var bars = document.querySelectorAll("[data-job-progress]");
    if (!bars.length) return;
    var base = window.location.pathname.replace(/\/job\/.*$/, "/job/");
    var url = base + "progress/";
    var timer = null;

    function watched() {
      return Array.prototype.filter.call(
        document.querySelectorAll("[data-job-progress]"),
        function (el) { return el.getAttribute("data-finished") !== "1"; }
      );
    }

    function refresh() {
      var els = watched();
      if (!els.length || document.hidden) return;
      var query = els.map(function (el) {
        return "id=" + encodeURIComponent(el.getAttribute("data-job-progress"));
      }).join("&");
      fetch(url + "?" + query, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          els.forEach(function (el) {
            var job = data.jobs[el.getAttribute("data-job-progress")];
            if (!job) return;
            var bar = el.querySelector("progress");
            var text = el.querySelector(".dj-progress-text");
            var eta = el.querySelector(".dj-eta");
            bar.value = job.percent;
            bar.setAttribute("aria-label", job.message || job.percent + "%");
            el.title = job.message;
            text.textContent = job.percent + "%";
            if (eta) eta.textContent = job.running ? (job.eta ? "ETA " + job.eta : "") : job.status_label;
            if (!job.running) el.setAttribute("data-finished", "1");
          });
        })
        .catch(function () { /* try again at the next tick */ })
        .then(function () { schedule(); });
    }

    function schedule() {
      clearTimeout(timer);
      if (watched().length && !document.hidden) timer = setTimeout(refresh, EVERY);
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) refresh();
    });
    schedule();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
