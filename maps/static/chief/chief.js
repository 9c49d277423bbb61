/* The chief's queue (/chief), live: the chief's zones and open reports on a small offline map (no tiles), and
   new reports inserted as they arrive on the chief's event stream (Server-Sent Events), with a buzz and a beep
   where the browser allows. The page works without it (reload to see new reports). Needs Leaflet for the map. */
(function () {
  "use strict";
  var queue = document.getElementById("queue");
  if (!queue) return;
  var base = queue.getAttribute("data-base") || "";
  var live = document.getElementById("live");
  var fresh = document.getElementById("fresh");
  var count = document.getElementById("count");
  var empty = document.getElementById("empty");
  var OPEN = { "new": 1, "assigned": 1, "in_progress": 1 };
  var WORDS = {
    "new": ["待核实", "to check"], "assigned": ["待接单", "to accept"], "in_progress": ["处理中", "in progress"],
    "resolved": ["已解决", "resolved"], "closed": ["已办结", "closed"], "rejected": ["不予受理", "rejected"],
    "duplicate": ["重复", "duplicate"]
  };
  var names = null;  // category code → name, fetched with the first new report

  function text(el, s) { el.appendChild(document.createTextNode(s)); return el; }
  function make(tag, cls, s) { var el = document.createElement(tag); if (cls) el.className = cls; if (s) text(el, s); return el; }
  function say(el, zh, en, cls) {
    if (!el) return;
    while (el.firstChild) el.removeChild(el.firstChild);
    text(el, zh + " ");
    el.appendChild(make("span", "en", en));
    el.className = cls;
    el.hidden = false;
  }
  function localTime(iso) {
    try {
      return new Date(iso).toLocaleString("sv-SE", { timeZone: "Asia/Shanghai", hour12: false }).slice(0, 16);
    } catch (e) { return String(iso).slice(0, 16).replace("T", " "); }
  }
  function items() { return queue.querySelectorAll("li.item"); }
  function recount() {
    var n = items().length;
    if (count) count.textContent = String(n);
    if (empty) empty.hidden = n > 0;
  }

  // ---- the map: the chief's zones and the open reports
  var map = null, markers = {};
  var mapEl = document.getElementById("map");
  function addMarker(id, lon, lat) {
    if (!map || lon == null || lat == null || isNaN(lon) || isNaN(lat)) return;
    var m = L.circleMarker([lat, lon], { radius: 8, color: "#b3261e", weight: 2, fillOpacity: 0.6 }).addTo(map);
    m.bindTooltip("#" + id);
    m.on("click", function () { window.location.href = base + "/chief/reports/" + id; });
    markers[id] = m;
  }
  if (mapEl && window.L) {
    mapEl.hidden = false;
    map = L.map(mapEl, { attributionControl: false, zoomSnap: 0.5 }).setView([22.99, 114.1], 11);
    var wanted = {};
    (mapEl.getAttribute("data-zone-ids") || "").split(";").forEach(function (z) { if (z) wanted[z] = true; });
    fetch(mapEl.getAttribute("data-zones"), { headers: { Accept: "application/geo+json" } })
      .then(function (r) { return r.json(); })
      .then(function (fc) {
        var mine = L.geoJSON(fc, {
          filter: function (f) { return !!wanted[f.properties.zone_id]; },
          style: { color: "#0b6e4f", weight: 2, fillColor: "#0b6e4f", fillOpacity: 0.08 }
        }).addTo(map);
        if (mine.getLayers().length) map.fitBounds(mine.getBounds(), { padding: [8, 8] });
      })
      .catch(function () { /* the list works without the map */ });
    Array.prototype.forEach.call(items(), function (li) {
      addMarker(li.getAttribute("data-id"), parseFloat(li.getAttribute("data-lon")), parseFloat(li.getAttribute("data-lat")));
    });
  }

  // ---- telling the chief: a buzz and a short beep (sound needs a tap on the page first, by browser rule)
  var audio = null;
  function unlock() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!audio && AC) { try { audio = new AC(); } catch (e) { audio = null; } }
    if (audio && audio.state === "suspended") audio.resume();
  }
  ["touchstart", "click", "keydown"].forEach(function (t) { document.addEventListener(t, unlock, { once: true, passive: true }); });
  function beep() {
    if (!audio || audio.state !== "running") return;
    var o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime;
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.2, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + 0.25);
    o.connect(g); g.connect(audio.destination);
    o.start(t); o.stop(t + 0.25);
  }
  function alertChief(r) {
    if (navigator.vibrate) { try { navigator.vibrate([200, 100, 200]); } catch (e) { /* not allowed */ } }
    beep();
    say(fresh, "新问题 #" + r.id + (r.description ? "：" + r.description.slice(0, 40) : ""), "new report", "fresh-note");
  }

  // ---- the queue, kept up to date from the stream
  function badge(status) {
    var w = WORDS[status] || [status, status];
    var b = make("span", "badge st-" + status, w[0] + " ");
    b.appendChild(make("span", "en", w[1]));
    return b;
  }
  function itemOf(id) { return queue.querySelector('li.item[data-id="' + String(id).replace(/\D/g, "") + '"]'); }
  function insert(r) {
    var li = make("li", "item fresh");
    li.setAttribute("data-id", String(r.id));
    li.setAttribute("data-status", r.status);
    var a = make("a");
    a.href = base + "/chief/reports/" + r.id;
    a.appendChild(make("strong", null, "#" + r.id + " " + ((names && names[r.category]) || r.category)));
    li.appendChild(a);
    text(li, " ");
    li.appendChild(badge(r.status));
    li.appendChild(document.createElement("br"));
    li.appendChild(make("span", "when", localTime(r.created_at)));
    text(li, " ");
    var where = r.address || (r.service_code ? "服务码 " + r.service_code : (r.point ? r.point.lat.toFixed(5) + ", " + r.point.lon.toFixed(5) : ""));
    li.appendChild(make("span", "where", where));
    if (r.description) {
      li.appendChild(document.createElement("br"));
      li.appendChild(make("span", "text desc", r.description.length > 80 ? r.description.slice(0, 77) + "..." : r.description));
    }
    queue.appendChild(li);  // oldest first: the newest goes last
    if (r.point) addMarker(r.id, r.point.lon, r.point.lat);
    recount();
  }
  function loadNames() {
    if (names) return Promise.resolve(names);
    return fetch(queue.getAttribute("data-categories"), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (list) { names = {}; list.forEach(function (c) { names[c.code] = c.name; }); return names; })
      .catch(function () { names = {}; return names; });
  }
  function arrived(ev) {
    var p;
    try { p = JSON.parse(ev.data); } catch (e) { return; }
    var r = p.report;
    if (!r) return;
    var li = itemOf(r.id);
    if (ev.type === "report.created" || ev.type === "report.assigned") {
      if (li || !OPEN[r.status]) return;
      loadNames().then(function () { if (!itemOf(r.id)) { insert(r); alertChief(r); } });
    } else if (ev.type === "report.status_changed" && li) {
      var to = (p.change && p.change.to) || r.status;
      if (!OPEN[to]) {
        li.parentNode.removeChild(li);
        if (markers[r.id] && map) { map.removeLayer(markers[r.id]); delete markers[r.id]; }
        recount();
      } else {
        var old = li.querySelector(".badge");
        if (old) li.replaceChild(badge(to), old);
        li.setAttribute("data-status", to);
      }
    }
  }

  var url = queue.getAttribute("data-events");
  if (!url || !window.EventSource) return;
  var es = new EventSource(url + "?last_event_id=" + encodeURIComponent(queue.getAttribute("data-after") || "0"));
  ["report.created", "report.assigned", "report.status_changed", "report.rated"].forEach(function (t) {
    es.addEventListener(t, arrived);
  });
  es.onopen = function () { say(live, "实时更新中", "live", "live"); };
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) say(live, "实时更新已停止，请刷新页面或重新登录", "live updates stopped: reload or sign in again", "live down");
    else say(live, "正在重新连接…", "reconnecting…", "live down");
  };
})();
