// Filters the overview as you type, and swaps in fresh content when the replica says its
// cache changed (server-sent events), without a reload and without asking the API server.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var namespace = document.getElementById("namespace");
  var search = document.getElementById("search");
  var status = document.getElementById("live-status");
  var etag = null, busy = false, again = false;

  // Times come as instants (the HTML is the same for every viewer and moment, so the replica
  // renders it once per change); they read as "3m ago" / "in 2m" here.
  function short(seconds) {
    if (seconds < 60) return Math.floor(seconds) + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h";
    return Math.floor(seconds / 86400) + "d";
  }
  function times() {
    var now = Date.now(), all = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < all.length; i++) {
      var t = Date.parse(all[i].getAttribute("datetime"));
      if (isNaN(t)) continue;
      var d = (t - now) / 1000;
      all[i].textContent = Math.abs(d) < 1 ? "now" : d < 0 ? short(-d) + " ago" : "in " + short(d);
    }
  }

  function filter() {
    if (!namespace || !search) return;
    var ns = namespace.value, q = search.value.trim().toLowerCase(), shown = 0;
    var rows = live.querySelectorAll("tr[data-key]");
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!ns || r.getAttribute("data-namespace") === ns) &&
        (!q || r.getAttribute("data-key").indexOf(q) !== -1);
      r.hidden = !ok;
      if (ok) shown++;
    }
    var count = document.getElementById("shown");
    if (count) count.textContent = String(shown);
    var url = new URL(window.location.href);
    if (ns) url.searchParams.set("namespace", ns); else url.searchParams.delete("namespace");
    if (q) url.searchParams.set("q", q); else url.searchParams.delete("q");
    window.history.replaceState(null, "", url);
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.delete("namespace");
    url.searchParams.delete("q");
    url.searchParams.set("fragment", "1");
    var headers = { "Accept": "text/html" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(url, { headers: headers, cache: "no-store" }).then(function (response) {
      if (response.status !== 200) return null;
      etag = response.headers.get("ETag");
      return response.text();
    }).then(function (html) {
      if (html === null) return;
      live.innerHTML = html;
      filter();
      times();
      document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }

  if (namespace) namespace.addEventListener("change", filter);
  if (search) search.addEventListener("input", filter);
  var form = document.getElementById("filters");
  if (form) form.addEventListener("submit", function (e) { e.preventDefault(); filter(); });
  filter();
  times();
  window.setInterval(times, 5000);

  if (window.EventSource) {
    var events = new EventSource("/events");
    events.addEventListener("change", refresh);
    events.onopen = function () { if (status) status.textContent = "live"; };
    events.onerror = function () { if (status) status.textContent = "reconnecting\u2026"; };
  }
  // A safety net for a lost event stream; an unchanged page answers 304.
  window.setInterval(refresh, 30000);
})();
