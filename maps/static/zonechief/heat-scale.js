/* zonechief: rescale Leaflet.heat 0.2.0 on every redraw.
 *
 * The page sends report counts per grid cell. Leaflet.heat clamps each drawn
 * (screen) cell at options.max (default 1) and scales by zoom, so counts would
 * saturate to one flat blob. Here the scale is a high quantile of what is being
 * drawn, at any zoom - like folium's patched copy (Leaflet.heat PR #78), which
 * uses the maximum; a quantile keeps one busy square from washing out the rest.
 */
(function () {
    if (!window.L || !L.HeatLayer) { return; }
    var redraw = L.HeatLayer.prototype._redraw;
    L.HeatLayer.include({
        _redraw: function () {
            if (!this._map) { return; }
            var heat = this._heat, data = heat.data, q = this.options.scaleQuantile || 0.98;
            this.options.max = Infinity;  // no clamping while binning; simpleheat clamps alpha at 1
            heat.data = function (d) {
                var v = d.map(function (p) { return p[2]; }).sort(function (a, b) { return a - b; });
                var top = v.length ? v[Math.min(v.length - 1, Math.floor(q * (v.length - 1)))] : 1;
                heat.max(top > 0 ? top : 1);
                return data.call(heat, d);
            };
            try { redraw.call(this); } finally { heat.data = data; }
        }
    });
})();
