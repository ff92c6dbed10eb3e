// The Agents page's refresh: every 5 s it asks the page's own URL for its
// rows as JSON and rewrites the live cells of each row in place, so sort,
// filter and focus stay as they are. A row that appears or disappears
// shows a note to reload instead of reshuffling the table.
"use strict";
(function () {
  var table = document.getElementById("agents");
  if (!table) return;
  var url = table.getAttribute("data-refresh");
  var busy = false;

  function set(tr, f, text, sort) {
    var td = tr.querySelector('[data-f="' + f + '"]');
    if (!td) return;
    var el = td.querySelector("code") || td;
    if (el.textContent !== text) el.textContent = text;
    if (sort !== undefined) td.setAttribute("data-sort", String(sort));
  }

  function apply(body) {
    var old = document.getElementById("agents-note");
    if (old && old.textContent.indexOf("Refresh failed") === 0) old.remove();
    var seen = {};
    body.rows.forEach(function (r) {
      seen[r.id] = true;
      var tr = document.getElementById("agent-" + r.id);
      if (!tr) { note("New agents: reload to see them."); return; }
      set(tr, "status", r.status);
      tr.querySelector('[data-f="status"]').className = r.status === "online" ? "ok" : "off";
      set(tr, "relay", r.relay);
      set(tr, "version", r.version);
      set(tr, "remote", r.remote);
      set(tr, "heartbeat", r.heartbeat, r.heartbeat_unix);
      set(tr, "streams", String(r.streams));
      set(tr, "udp_drops", r.udp_drops);
      set(tr, "today", r.today, r.today_n);
      if (r.status === "revoked") {
        var act = tr.querySelector(".row-actions");
        if (act) act.textContent = "";
      }
    });
    table.querySelectorAll("tbody tr[data-agent]").forEach(function (tr) {
      if (!seen[tr.getAttribute("data-agent")]) note("Some agents are gone: reload to update the list.");
    });
    var on = document.getElementById("agents-online");
    if (on) on.textContent = String(body.online);
    var t = document.getElementById("agents-refreshed");
    if (t) t.textContent = "(updated " + new Date().toLocaleTimeString() + ")";
  }

  function note(msg) {
    var n = document.getElementById("agents-note");
    if (!n) {
      n = document.createElement("p");
      n.id = "agents-note";
      n.className = "flash";
      n.setAttribute("role", "status");
      table.parentNode.insertBefore(n, table);
    }
    n.textContent = msg;
  }

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        return resp.json();
      })
      .then(apply)
      .catch(function (e) { note("Refresh failed (" + e.message + "); retrying in 5 s."); })
      .then(function () { busy = false; });
  }
  setInterval(refresh, 5000);
  window.ndRefreshAgents = refresh;
})();
