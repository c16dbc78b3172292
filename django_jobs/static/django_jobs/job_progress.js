/* django_jobs: the end-user progress widget ({% job_progress %}).

   Every .dj-job-progress on the page polls its job's JSON view (data-job-progress-url)
   until the job finishes: after 1 s, then less and less often while nothing moves (up to
   every 10 s), every second again as soon as it does. Bars of the same job share one
   request. Paused while the tab is hidden; stops on a finished job and on 404 (the job is
   gone, or the user no longer may see it). The cancel button posts with the CSRF token
   the tag rendered into its form (else the csrftoken cookie).

   No library, no build step. window.djangoJobsProgress.scan() picks up bars added to the
   page later. */
(function () {
  "use strict";
  if (window.djangoJobsProgress) {
    window.djangoJobsProgress.scan();
    return;
  }
  var FIRST = 1000;
  var LONGEST = 10000;
  var GROWTH = 1.6;
  var groups = {}; // progress URL -> its bars and polling state

  function part(el, name) {
    return el.querySelector(".dj-job-progress__" + name);
  }

  function setText(node, text) {
    // Only on a change: the status line is a live region, read out at each change.
    if (node && node.textContent !== text) node.textContent = text;
  }

  function render(el, s) {
    var bar = part(el, "bar");
    if (bar) {
      bar.value = s.percent;
      bar.textContent = s.percent + "%";
    }
    setText(part(el, "percent"), s.percent + "%");
    setText(part(el, "outcome"), s.status_text || "");
    setText(part(el, "message"), s.message || "");
    setText(part(el, "eta"), s.finished ? "" : s.eta_text || "");
    var old = el.getAttribute("data-job-status");
    if (old !== s.status) {
      el.classList.remove("dj-job-progress--" + old);
      el.classList.add("dj-job-progress--" + s.status);
      el.setAttribute("data-job-status", s.status);
    }
    el.classList.toggle("dj-job-progress--finished", !!s.finished);
    el.classList.toggle("dj-job-progress--cancelling", !!s.cancel_requested);
    el.setAttribute("data-job-finished", s.finished ? "true" : "false");
    var form = part(el, "cancel-form");
    if (form) form.hidden = !!(s.finished || s.cancel_requested);
  }

  function stop(group, gone) {
    group.done = true;
    clearTimeout(group.timer);
    if (!gone) return;
    group.els.forEach(function (el) {
      el.classList.add("dj-job-progress--gone");
      setText(part(el, "eta"), "");
      var form = part(el, "cancel-form");
      if (form) form.hidden = true;
    });
  }

  function schedule(group, delay) {
    clearTimeout(group.timer);
    group.timer = null;
    if (group.done || document.hidden) return; // visibilitychange resumes it
    group.timer = setTimeout(function () { poll(group); }, delay);
  }

  function answer(group, response) {
    if (response.status === 404) {
      stop(group, true);
      return null;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function update(group, s, sent) {
    // An answer older than one already shown (a poll overtaken by a cancel) is dropped;
    // polling goes on all the same.
    if (sent < group.shown) {
      if (!group.timer) schedule(group, group.delay);
      return;
    }
    group.shown = sent;
    var key = [s.status, s.percent, s.message, s.cancel_requested].join("\u0000");
    var moved = key !== group.key;
    group.key = key;
    group.els.forEach(function (el) { render(el, s); });
    if (s.finished) {
      stop(group, false);
      return;
    }
    group.delay = moved ? FIRST : Math.min(LONGEST, group.delay * GROWTH);
    schedule(group, group.delay);
  }

  function poll(group) {
    group.timer = null;
    if (group.done) return;
    if (group.busy) {
      group.again = true; // one poll at a time: the next one when this one is answered
      return;
    }
    group.busy = true;
    var sent = ++group.sent;
    fetch(group.url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    })
      .then(function (r) { return answer(group, r); })
      .then(function (s) { if (s) update(group, s, sent); })
      .catch(function () {
        // The network or the server failed: try again, less and less often.
        group.delay = Math.min(LONGEST, group.delay * GROWTH);
        schedule(group, group.delay);
      })
      .then(function () {
        group.busy = false;
        if (group.again) {
          group.again = false;
          if (!group.timer) schedule(group, group.delay);
        }
      });
  }

  function csrfToken(form) {
    var field = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (field && field.value) return field.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function cancel(event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("dj-job-progress__cancel-form")) return;
    var el = form.closest(".dj-job-progress");
    var group = el && groups[el.getAttribute("data-job-progress-url")];
    if (!group) return; // not watched: let the browser post the form
    event.preventDefault();
    var button = form.querySelector("button");
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    var done = false;
    var sent = ++group.sent;
    // The token in the body as well as in the header: Django reads the body's first, so
    // a project with another CSRF_HEADER_NAME works too.
    var token = csrfToken(form);
    var body = new URLSearchParams();
    body.append("csrfmiddlewaretoken", token);
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json", "X-CSRFToken": token },
      body: body
    })
      .then(function (r) { return answer(group, r); })
      .then(function (s) {
        done = true;
        if (!s) return;
        group.done = false;
        group.key = null;
        update(group, s, sent); // a running job: watch it every second until its worker stops it
      })
      .catch(function () {
        setText(part(el, "message"), el.getAttribute("data-cancel-error") || "");
      })
      .then(function () {
        button.removeAttribute("aria-busy");
        if (!done) button.disabled = false;
      });
  }

  function scan() {
    var els = document.querySelectorAll(".dj-job-progress[data-job-progress-url]");
    Array.prototype.forEach.call(els, function (el) {
      if (el.hasAttribute("data-job-watched")) return;
      el.setAttribute("data-job-watched", "");
      var url = el.getAttribute("data-job-progress-url");
      var group = groups[url];
      if (!group) {
        group = groups[url] = { url: url, els: [], delay: FIRST, timer: null, key: null,
                                done: true, busy: false, again: false, sent: 0, shown: 0 };
      }
      group.els.push(el);
      if (el.getAttribute("data-job-finished") !== "true" && group.done) {
        group.done = false;
        schedule(group, FIRST);
      }
    });
  }

  document.addEventListener("submit", cancel);
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    Object.keys(groups).forEach(function (url) {
      var group = groups[url];
      if (group.done) return;
      group.delay = FIRST;
      schedule(group, 0);
    });
  });
  window.djangoJobsProgress = { scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
