/* The planner's dashboard (GET /dashboard): filters in the page, reflected in the URL; map layers and
   Vega-Lite charts fetched as JSON from this server with the filters' query string. Layers are a list of
   definitions (id, name, on, url(query), make(data)); optional ones come from the page (data-optional-layers). */
(function () {
  'use strict';
  var BASE = (document.currentScript && document.currentScript.dataset.base) || '';
  var FIELDS = ['since', 'until', 'town', 'zone', 'category', 'status'];
  var CHARTS = ['weekly', 'backlog', 'time_to_fix', 'satisfaction', 'workload'];
  var HOT = {'hot 99%': '#d62f27', 'hot 95%': '#ed7551', 'hot 90%': '#fab984',
             'cold 90%': '#c0ccbe', 'cold 95%': '#849eba', 'cold 99%': '#4575b5'};
  var form = document.getElementById('filters');
  var statusBox = document.getElementById('status');
  var state = window.zcDashboard = {version: 0, chartsRendered: 0, firstChartsAt: null, allChartsAt: null, layers: {}, errors: []};

  function url(path, q) { return BASE + path + (q ? '?' + q : ''); }
  function text(tag, s, cls) { var e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; }

  // ---------------------------------------------------------------- filters <-> URL
  function readUrl() {
    var p = new URLSearchParams(location.search);
    FIELDS.forEach(function (f) { if (p.has(f)) form.elements[f].value = p.get(f); });
    syncZones();
  }
  function query(only) {
    var p = new URLSearchParams();
    FIELDS.forEach(function (f) {
      var v = form.elements[f].value;
      if (v && (!only || only.indexOf(f) >= 0)) p.set(f, v);
    });
    return p.toString();
  }
  function syncZones() {  // a town narrows the zone list; a zone of another town is dropped
    var town = form.elements.town.value, sel = form.elements.zone;
    Array.prototype.forEach.call(sel.options, function (o) {
      o.hidden = !!(town && o.dataset.town && o.dataset.town !== town);
    });
    if (sel.selectedOptions[0] && sel.selectedOptions[0].hidden) sel.value = '';
  }

  // ---------------------------------------------------------------- map and layers
  var map = L.map('map', {preferCanvas: false, zoomSnap: 0.25}).setView([23.05, 114.1], 12);
  var fitted = false;

  function heatLayer(data) {
    var counts = data.points.map(function (p) { return p[2]; }).sort(function (a, b) { return a - b; });
    var top = counts.length ? Math.max(1, counts[Math.floor(0.99 * (counts.length - 1))]) : 1;
    return L.heatLayer(data.points, {radius: 12, blur: 14, minOpacity: 0.25, max: top});
  }
  function popupOf(props, rows) {
    return function () {
      var box = document.createElement('div');
      rows.forEach(function (r) { if (props[r[0]] !== undefined) box.appendChild(text('div', r[1] + ': ' + props[r[0]])); });
      return box;
    };
  }
  function geojsonOf(data) {  // a FeatureCollection, or one inside an answer object
    if (data && data.type === 'FeatureCollection') return data;
    for (var k in data) if (data[k] && data[k].type === 'FeatureCollection') return data[k];
    return {type: 'FeatureCollection', features: []};
  }
  function hotspotLayer(data) {
    return L.geoJSON(data, {
      style: function (f) { return {fillColor: HOT[f.properties['class']] || '#999', fillOpacity: 0.7, color: '#777', weight: 0.5}; },
      onEachFeature: function (f, l) {
        l.bindPopup(popupOf(f.properties, [['class', '类别 Class'], ['count', '报告 Reports'], ['gi_z', 'Gi* z']]));
      }
    });
  }
  function zoneLayer(data) {
    var layer = L.geoJSON(data, {
      style: function () { return {color: '#1f4e79', weight: 1.2, fill: false}; },
      onEachFeature: function (f, l) {
        l.bindTooltip(function () { return text('span', f.properties.zone_id + ' ' + f.properties.name); }, {sticky: true});
        l.bindPopup(popupOf(f.properties, [['zone_id', '片区 Zone'], ['name', '名称 Name'], ['town', '镇街 Town'], ['chief', '片长 Chief']]));
      }
    });
    if (!fitted && data.features.length) { map.fitBounds(layer.getBounds()); fitted = true; }
    return layer;
  }

  var LAYERS = [
    {id: 'heat', name: '热力 Heat', on: true, url: function (q) { return url('/v1/dashboard/layers/heat', q); }, make: heatLayer},
    {id: 'hotspots', name: '冷热点 Hot spots (Gi*)', on: false, url: function (q) { return url('/v1/dashboard/layers/hotspots', q); }, make: hotspotLayer},
    {id: 'zones', name: '片区 Zones', on: true, url: function () { return url('/v1/dashboard/layers/zones', query(['town', 'zone'])); }, make: zoneLayer}
  ];
  // The siting and patrol modules' layers (GET /v1/plan/stations, /v1/patrols/coverage as GeoJSON): shown when
  // the page lists their route as present. Coverage is for staff: without a signed-in session it says so.
  var ROLE = {existing: '#1f4e79', proposed: '#d62f27', uncovered_demand: '#999999'};
  var COVER = {'well covered': '#1a9850', 'under-patrolled hot spot': '#d73027', 'over-patrolled quiet area': '#4575b4'};
  function stationLayer(data) {
    return L.geoJSON(geojsonOf(data), {
      pointToLayer: function (f, ll) {
        var role = f.properties.role, c = ROLE[role] || '#333';
        var m = L.circleMarker(ll, {radius: role === 'uncovered_demand' ? 3 : 7, color: c, weight: 1, fillColor: c, fillOpacity: 0.85});
        if (role !== 'uncovered_demand' && f.properties.radius) {
          return L.featureGroup([L.circle(ll, {radius: f.properties.radius, color: c, weight: 1, fill: false, dashArray: '4 4'}), m]);
        }
        return m;
      },
      onEachFeature: function (f, l) {
        l.bindPopup(popupOf(f.properties, [['role', '类型 Role'], ['name', '名称 Name'], ['zone_id', '片区 Zone'], ['demand', '需求 Demand']]));
      }
    });
  }
  function coverageLayer(data) {
    return L.geoJSON(geojsonOf(data), {
      style: function (f) {
        var c = COVER[f.properties['class']];
        return {fillColor: c || '#cccccc', fillOpacity: c ? 0.6 : 0.15, color: '#777', weight: 0.4};
      },
      onEachFeature: function (f, l) {
        l.bindPopup(popupOf(f.properties, [['class', '类别 Class'], ['reports', '报告 Reports'], ['dwell_min', '停留 Dwell min'], ['visits', '到访 Visits']]));
      }
    });
  }
  var OPTIONAL = {
    stations: {make: stationLayer, url: function () {
      return url('/v1/plan/stations', query(['since', 'until', 'category', 'status', 'town', 'zone']) + '&format=geojson');
    }},
    patrols: {make: coverageLayer, url: function () {
      return url('/v1/patrols/coverage', query(['since', 'until', 'category', 'town', 'zone']) + '&format=geojson&layer=cells');
    }}
  };
  JSON.parse(document.getElementById('map').dataset.optionalLayers || '[]').forEach(function (o) {
    if (OPTIONAL[o.id]) LAYERS.push({id: o.id, name: o.name, on: false, url: OPTIONAL[o.id].url, make: OPTIONAL[o.id].make});
  });

  var box = document.getElementById('layers');
  LAYERS.forEach(function (def) {
    var label = document.createElement('label'), cb = document.createElement('input');
    cb.type = 'checkbox'; cb.checked = def.on; cb.name = 'layer-' + def.id; cb.dataset.layer = def.id;
    label.appendChild(cb); label.appendChild(document.createTextNode(' ' + def.name));
    box.appendChild(label);
    cb.addEventListener('change', function () { def.on = cb.checked; loadLayer(def, query()); });
  });

  function loadLayer(def, q) {
    var slot = state.layers[def.id] || (state.layers[def.id] = {});
    if (slot.layer) { map.removeLayer(slot.layer); slot.layer = null; }
    if (!def.on) return Promise.resolve();
    var ticket = slot.ticket = (slot.ticket || 0) + 1;
    return fetch(def.url(q), {headers: {Accept: 'application/json'}}).then(function (r) {
      if (r.status === 401 || r.status === 403) {  // a staff layer without a staff session: a notice, not an error
        slot.notice = def.name + ': 需职员登录 staff sign-in needed (/chief)';
        statusBox.textContent = slot.notice;
        return null;
      }
      if (!r.ok) return r.json().then(function (p) { throw new Error(def.name + ': ' + (p.detail || 'HTTP ' + r.status)); },
                                      function () { throw new Error(def.name + ': HTTP ' + r.status); });
      return r.json();
    }).then(function (data) {
      if (data === null || ticket !== slot.ticket || !def.on) return;  // a newer filter or the toggle won
      slot.layer = def.make(data).addTo(map);
      slot.loaded = (slot.loaded || 0) + 1;
      slot.loadedAt = performance.now();
    }).catch(fail);
  }

  // ---------------------------------------------------------------- charts
  var chartsTicket = 0;
  // Two halves at once: the time-to-fix chart joins every status event, so it may come last.
  var PARTS = {main: ['weekly', 'backlog', 'satisfaction', 'workload'], time_to_fix: ['time_to_fix']};
  function loadPart(part, q, ticket) {
    return fetch(url('/v1/dashboard/charts', (q ? q + '&' : '') + 'part=' + part), {headers: {Accept: 'application/json'}}).then(function (r) {
      if (!r.ok) return r.json().then(function (p) { throw new Error(p.detail || ('HTTP ' + r.status)); });
      return r.json();
    }).then(function (data) {
      if (ticket !== chartsTicket) return false;
      if (part === 'main') {
        var words = document.getElementById('filter-words');
        words.textContent = data.reports.toLocaleString() + ' 条报告 reports' + (data.filters.length ? ' · ' + data.filters.join(' · ') : '');
      }
      return Promise.all(PARTS[part].map(function (name) {
        return vegaEmbed('#chart-' + name, data.charts[name], {actions: false, ast: true, renderer: 'svg'});
      })).then(function () {
        if (part === 'main' && state.firstChartsAt === null) state.firstChartsAt = performance.now();
        return true;
      });
    });
  }
  function loadCharts(q) {
    var ticket = ++chartsTicket;
    return Promise.all([loadPart('main', q, ticket), loadPart('time_to_fix', q, ticket)]).then(function (done) {
      if (ticket !== chartsTicket || !done[0] || !done[1]) return;
      state.chartsRendered += 1;
      state.renderedQuery = q;  // every chart on screen is for this query
      if (!state.allChartsAt) state.allChartsAt = performance.now();
    }).catch(fail);
  }

  function fail(err) {
    state.errors.push(String(err && err.message || err));
    statusBox.textContent = '出错 Error: ' + (err && err.message || err);
    statusBox.className = 'status error';
  }

  // ---------------------------------------------------------------- exports
  function updateExports(q) {
    Array.prototype.forEach.call(document.querySelectorAll('#exports a'), function (a) {
      var path = a.getAttribute('href').split('?')[0];
      a.setAttribute('href', path + (q ? '?' + q : ''));
    });
  }

  // ---------------------------------------------------------------- refresh
  function refresh() {
    var q = query();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
    updateExports(q);
    statusBox.textContent = '加载中 Loading…'; statusBox.className = 'status';
    var version = state.version + 1;
    return Promise.all([loadCharts(q)].concat(LAYERS.map(function (d) { return loadLayer(d, q); }))).then(function () {
      state.version = version;
      if (!statusBox.classList.contains('error')) statusBox.textContent = '';
      document.body.dataset.version = String(version);
    });
  }

  form.addEventListener('change', function (e) {
    if (e.target.name === 'town') syncZones();
    if (e.target.name && e.target.name.indexOf('layer-') === 0) return;
    state.errors = []; statusBox.className = 'status';
    refresh();
  });
  form.addEventListener('submit', function (e) { e.preventDefault(); refresh(); });
  readUrl();
  refresh();
})();
