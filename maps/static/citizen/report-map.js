/* /report with JavaScript: the phone's position or a tap on an offline map (the zones, no tiles) sets the
   point; the zone and chief that cover it are shown before sending. Needs Leaflet (loaded before this). */
(function () {
  "use strict";
  var el = document.getElementById("map");
  var answer = document.getElementById("where-answer");
  var inputs = ["lon", "lat", "crs"].map(function (id) { return document.getElementById(id); });
  if (!el || !answer || !window.L) return;
  var map = L.map(el, { attributionControl: false, zoomSnap: 0.5 }).setView([22.99, 114.1], 11);
  var marker = null, asked = 0;

  function say(parts, outside) {
    while (answer.firstChild) answer.removeChild(answer.firstChild);
    parts.forEach(function (p) {
      if (typeof p === "string") answer.appendChild(document.createTextNode(p));
      else answer.appendChild(p);
    });
    answer.className = "answer" + (outside ? " outside" : "");
  }

  function telLink(phone) {
    var a = document.createElement("a");
    a.href = "tel:" + phone.replace(/\s/g, "");
    a.className = "tel";
    a.textContent = phone;
    return a;
  }

  function show(a) {
    if (!a.zone) {
      say(["这个位置不在任何片区内，提交后由工作人员核实处理。 This point is outside every zone; staff will check the report."], true);
      return;
    }
    var parts = ["片区 " + a.zone.name + "（" + a.zone.id + "）"];
    if (a.village) parts.push(" · " + a.village.name);
    if (a.snapped) parts.push(" · 在片区边界外约 " + Math.round(a.distance_m) + " 米 / about " + Math.round(a.distance_m) + " m outside it");
    if (a.chief) {
      parts.push(" — 片长 " + a.chief.name + " 电话 ");
      parts.push(telLink(a.chief.phone));
    }
    parts.push(" / zone " + a.zone.id + (a.chief ? ", chief " + a.chief.name : ""));
    say(parts, false);
  }

  function setPoint(lon, lat) {
    inputs[0].value = lon.toFixed(6);
    inputs[1].value = lat.toFixed(6);
    inputs[2].value = "wgs84";
    inputs.forEach(function (i) { i.disabled = false; });
    var ll = [lat, lon];
    if (marker) marker.setLatLng(ll);
    else marker = L.circleMarker(ll, { radius: 9, color: "#b3261e", weight: 3, fillOpacity: 0.5 }).addTo(map);
    say(["正在查询片区… / finding the zone…"], false);
    var mine = ++asked;
    fetch(el.getAttribute("data-lookup") + "?lon=" + lon + "&lat=" + lat + "&crs=wgs84", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (a) { if (mine === asked) show(a); })
      .catch(function () { if (mine === asked) say(["暂时无法查询片区，仍可提交。 Could not find the zone now; you can still send."], true); });
  }

  fetch(el.getAttribute("data-zones"), { headers: { Accept: "application/geo+json" } })
    .then(function (r) { return r.json(); })
    .then(function (fc) {
      var zones = L.geoJSON(fc, {
        style: { color: "#0b6e4f", weight: 1.5, fillColor: "#0b6e4f", fillOpacity: 0.06 },
        onEachFeature: function (f, layer) {
          // An element, not a string: Leaflet puts a string in as HTML, and zone names come from uploaded data.
          var label = document.createElement("span");
          label.textContent = f.properties.name;
          layer.bindTooltip(label, { permanent: true, direction: "center", className: "zc-label" });
        }
      }).addTo(map);
      // Names only once zoomed in: at the towns' scale they cover each other.
      function labels() {
        var show = map.getZoom() >= 13;
        zones.eachLayer(function (l) { var t = l.getTooltip(); if (t) { if (show) l.openTooltip(); else l.closeTooltip(); } });
      }
      map.on("zoomend", labels);
      if (!marker) map.fitBounds(zones.getBounds());
      labels();
    })
    .catch(function () { /* the map stays empty; the position and the address still work */ });

  map.on("click", function (e) { setPoint(e.latlng.lng, e.latlng.lat); });

  var locate = document.getElementById("locate");
  if (locate) {
    locate.addEventListener("click", function () {
      if (!navigator.geolocation) {
        say(["这个浏览器不能提供位置，请在地图上点选或填写地址。 This browser cannot give your position; tap the map or type an address."], true);
        return;
      }
      say(["正在获取位置… / getting your position…"], false);
      navigator.geolocation.getCurrentPosition(function (pos) {
        setPoint(pos.coords.longitude, pos.coords.latitude);
        map.setView([pos.coords.latitude, pos.coords.longitude], 15);
      }, function () {
        say(["无法获取位置（请允许定位），或在地图上点选、填写地址。 Your position is not available (allow location), or tap the map or type an address."], true);
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 });
    });
  }

  // Drawn again after a refused send: the point chosen before.
  var lon0 = parseFloat(inputs[0].value), lat0 = parseFloat(inputs[1].value);
  if (isFinite(lon0) && isFinite(lat0)) { setPoint(lon0, lat0); map.setView([lat0, lon0], 15); }
})();
