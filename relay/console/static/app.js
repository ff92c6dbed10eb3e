// The console's script. Every page works without it; it adds popups,
// copy buttons, sorting and filtering of tables, and the RTSP pill's copy.
"use strict";
(function () {
  function csrf() {
    var el = document.querySelector('input[name="csrf"]');
    return el ? el.value : "";
  }

  // toast says something briefly, for screen readers too.
  function toast(msg) {
    var t = document.getElementById("toast");
    if (!t) {
      t = document.createElement("div");
      t.id = "toast";
      t.className = "toast";
      t.setAttribute("role", "status");
      document.body.appendChild(t);
    }
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(t._timer);
    t._timer = setTimeout(function () { t.hidden = true; }, 6000);
  }

  // copyText copies text and says so; show adds the text to the message.
  function copyText(text, what, show) {
    function fallback() {
      var ta = document.createElement("textarea");
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      ta.remove();
      return ok;
    }
    var done = function () { toast("Copied " + what + " to the clipboard" + (show ? ": " + text : ".")); };
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(done, function () {
        if (fallback()) done(); else toast(what + ": " + text);
      });
    }
    if (fallback()) done(); else toast(what + ": " + text);
    return Promise.resolve();
  }
  window.ndCopy = copyText;

  // Dialogs: [data-dialog=id] opens <dialog id>; [data-close] closes it.
  // A dialog the server rendered open (a form error) becomes modal.
  function openDialog(d) {
    if (d.open) d.close();
    d.showModal();
    var f = d.querySelector("[autofocus], input:not([type=hidden]), button");
    if (f) f.focus();
  }
  // fill points a shared dialog at the row its opener belongs to:
  // data-action is its form's action, data-value-NAME the value of its
  // field NAME, data-text-NAME the text of its [data-slot=NAME].
  function fill(d, opener) {
    var form = d.querySelector("form");
    Array.prototype.forEach.call(opener.attributes, function (a) {
      if (a.name === "data-action" && form) {
        form.setAttribute("action", a.value);
      } else if (a.name.indexOf("data-value-") === 0 && form) {
        var f = form.elements[a.name.slice(11)];
        if (f) {
          f.value = a.value;
          f.removeAttribute("aria-invalid");
        }
      } else if (a.name.indexOf("data-text-") === 0) {
        d.querySelectorAll('[data-slot="' + a.name.slice(10) + '"]').forEach(function (el) { el.textContent = a.value; });
      }
    });
    if (opener.hasAttribute("data-action")) {
      d.querySelectorAll("[data-error]").forEach(function (el) { el.remove(); });
    }
  }

  document.addEventListener("click", function (ev) {
    var opener = ev.target.closest("[data-dialog]");
    if (opener) {
      var d = document.getElementById(opener.getAttribute("data-dialog"));
      if (d && d.showModal) {
        ev.preventDefault();
        fill(d, opener);
        openDialog(d);
      }
      return;
    }
    var closer = ev.target.closest("[data-close]");
    if (closer) {
      var dlg = closer.closest("dialog");
      if (dlg) {
        ev.preventDefault();
        dlg.close();
      }
      return;
    }
    var copier = ev.target.closest("[data-copy]");
    if (copier) {
      var src = document.getElementById(copier.getAttribute("data-copy"));
      if (src) copyText(src.textContent.trim(), copier.getAttribute("data-what") || "the command");
    }
  });

  // The RTSP pill asks the relay for a signed URL and copies it.
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!f.matches("form[data-rtsp]")) return;
    ev.preventDefault();
    fetch(f.action, {
      method: "POST",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf() },
      credentials: "same-origin",
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) throw new Error(body.error || ("HTTP " + resp.status));
        return body;
      });
    }).then(function (body) {
      return copyText(body.url, "the RTSP URL", true);
    }).catch(function (e) { toast("RTSP URL: " + e.message); });
  });

  // A running discovery or probe ([data-poll]) is refreshed in place from
  // the page itself until it ends; ticked rows stay ticked.
  function pollRun() {
    setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.text();
      }).then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("run");
        var cur = document.getElementById("run");
        if (!next || !cur) return;
        var ticked = {}, seen = {};
        cur.querySelectorAll('input[name="host"]').forEach(function (c) { ticked[c.value] = c.checked; seen[c.value] = true; });
        cur.replaceWith(next);
        next.querySelectorAll('input[name="host"]').forEach(function (c) { if (seen[c.value]) c.checked = ticked[c.value]; });
        next.querySelectorAll("table.data").forEach(setupTable);
        if (next.hasAttribute("data-poll")) pollRun();
      }).catch(function (e) { toast("Refreshing the results: " + e.message); });
    }, 700);
  }

  function setup() {
    if (document.querySelector("#run[data-poll]")) pollRun();
    document.querySelectorAll("dialog[open]").forEach(function (d) {
      if (d.showModal) openDialog(d);
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    document.querySelectorAll("table.data").forEach(setupTable);
  }

  // Tables sort by a click on a header (or Enter on it), filter on the
  // [data-filter=id] box and show their visible row count in
  // [data-count=id]. Cells sort by data-sort if present, else their text.
  function setupTable(table) {
    var id = table.id;
    var tbody = table.tBodies[0];
    if (!tbody) return;
    var labels = [];
    table.querySelectorAll("thead th").forEach(function (th, i) {
      labels[i] = th.textContent.trim();
      if (th.hasAttribute("data-nosort")) return;
      th.setAttribute("aria-sort", "none");
      th.tabIndex = 0;
      var sort = function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        table.querySelectorAll("thead th[aria-sort]").forEach(function (o) { o.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", dir);
        var rows = Array.prototype.slice.call(tbody.rows);
        var key = function (r) {
          var c = r.cells[i];
          if (!c) return "";
          return c.hasAttribute("data-sort") ? c.getAttribute("data-sort") : c.textContent.trim().toLowerCase();
        };
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny) && String(nx) === x && String(ny) === y) ? nx - ny : x.localeCompare(y, undefined, { numeric: true });
          return dir === "ascending" ? c : -c;
        });
        rows.forEach(function (r) { tbody.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); } });
    });
    // Narrow screens show each cell with its column's name.
    Array.prototype.forEach.call(tbody.rows, function (r) {
      Array.prototype.forEach.call(r.cells, function (c, i) { if (labels[i] && !c.hasAttribute("data-label")) c.setAttribute("data-label", labels[i]); });
    });
    if (!id) return;
    var counts = document.querySelectorAll('[data-count="' + id + '"]');
    var box = document.querySelector('input[data-filter="' + id + '"]');
    if (!box) return;
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase();
      var n = 0;
      Array.prototype.forEach.call(tbody.rows, function (r) {
        var show = q === "" || r.textContent.toLowerCase().indexOf(q) >= 0;
        r.hidden = !show;
        if (show) n++;
      });
      counts.forEach(function (c) { c.textContent = q === "" ? String(n) : n + " of " + tbody.rows.length; });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
