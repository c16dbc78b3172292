/* django_jobs admin, schedule form: shows only the timing fields of the chosen kind, and
   refreshes the preview of the next five runs (and the schedule in words) as one types,
   from the admin's preview view. Without JavaScript the form works the same, and the
   preview shows the saved (or last submitted) timing. */
(function () {
  "use strict";

  function start() {
    var box = document.getElementById("dj-schedule-preview");
    var kind = document.getElementById("id_kind");
    if (!box || !box.dataset.url || !kind) {
      return; // a read-only form: nothing to follow
    }
    var url = box.dataset.url;
    var names = ["kind", "cron", "interval", "run_at_0", "run_at_1", "timezone", "enabled"];
    var timer = null;
    var sent = 0;

    function field(name) {
      return document.getElementById("id_" + name);
    }

    function showFieldsOf(value) {
      var rows = { cron: "cron", interval: "interval", once: "run_at" };
      Object.keys(rows).forEach(function (k) {
        var row = document.querySelector(".form-row.field-" + rows[k]);
        if (row) {
          // An empty kind shows them all.
          row.hidden = Boolean(value) && value !== k;
        }
      });
    }

    function query() {
      var params = new URLSearchParams();
      names.forEach(function (name) {
        var input = field(name);
        if (!input) {
          return;
        }
        if (input.type === "checkbox") {
          if (input.checked) {
            params.set(name, "on");
          }
        } else {
          params.set(name, input.value);
        }
      });
      if (box.dataset.schedule) {
        params.set("schedule", box.dataset.schedule);
      }
      return params.toString();
    }

    function refresh() {
      var mine = ++sent;
      fetch(url + "?" + query(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (!data || mine !== sent) {
            return; // an answer to an older question
          }
          var parsed = document.createElement("template");
          parsed.innerHTML = data.html.trim();
          var fresh = parsed.content.firstElementChild;
          if (fresh) {
            box.replaceChildren.apply(box, Array.from(fresh.childNodes));
          }
        })
        .catch(function () {
          /* offline or logged out: the preview keeps its last state */
        });
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 250);
    }

    names.forEach(function (name) {
      var input = field(name);
      if (input) {
        input.addEventListener("input", later);
        input.addEventListener("change", later);
        input.addEventListener("blur", later); // the calendar and clock pickers set values silently
      }
    });
    kind.addEventListener("change", function () {
      showFieldsOf(kind.value);
    });
    showFieldsOf(kind.value);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
