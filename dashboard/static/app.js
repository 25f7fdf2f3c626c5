// Charts drawn with the vendored uPlot from data the page embeds as JSON
// (<script type="application/json">), so no inline script is needed. A chart element names
// its spec (data-chart) and, optionally, the JSON's element id (data-source, default
// "chart-data"). The x axis always spans the range the page selected (x_min..x_max), in UTC,
// whatever the data holds; empty hours and days come from the server as zeros.
(function () {
  "use strict";

  var CHARTS = {
    requests: { unit: "requests", series: [["requests", "Requests", "#3b6fb6"], ["errors", "Errors", "#c0392b"]] },
    tokens: { unit: "tokens", series: [["input", "Input", "#3b6fb6"], ["output", "Output", "#c96442"],
              ["cache_read", "Cache read", "#7f8c8d"], ["cache_write", "Cache write", "#8e44ad"]] },
    cost: { unit: "USD", series: [["cost", "Cost", "#27ae60"]] },
    latency: { unit: "ms", gaps: true, series: [["latency_p50", "Latency p50", "#3b6fb6"],
               ["latency_p95", "Latency p95", "#1d3b66"], ["ttft_p50", "TTFT p50", "#e67e22"],
               ["ttft_p95", "TTFT p95", "#a04000"]] },
    cost_by_model: { unit: "USD" },
    cost_by_group: { unit: "USD" },
    requests_by_domain: { unit: "requests" },
    daily_tokens: { unit: "tokens", bars: true, series: [["tokens", "Tokens", "#3b6fb6"]] }
  };

  var PALETTE = ["#3b6fb6", "#c96442", "#27ae60", "#8e44ad", "#e67e22", "#16a085",
                 "#c0392b", "#7f8c8d"];
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function compact(value) {
    if (value === null || value === undefined) { return "–"; }
    var abs = Math.abs(value);
    if (abs >= 1e9) { return (value / 1e9).toFixed(1) + "B"; }
    if (abs >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (abs >= 1e3) { return (value / 1e3).toFixed(1) + "k"; }
    return String(Math.round(value * 100) / 100);
  }

  function withUnit(value, unit) {
    if (value === null || value === undefined) { return "–"; }
    if (unit === "USD") { return "$" + (Math.abs(value) >= 1 ? value.toFixed(2) : value.toFixed(4)); }
    return compact(value) + " " + unit;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // Unix seconds → "7 Dec 2026 14:00 UTC" (hours) or "Mon 7 Dec 2026" (days).
  function when(seconds, granularity) {
    var d = new Date(seconds * 1000);
    var day = d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear();
    if (granularity === "day") { return day + " (UTC day)"; }
    return day + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  // A chart whose series are named by the data ({name: [values]}), e.g. cost per model.
  function dynamicSeries(data, key) {
    var groups = data[key];
    if (!groups || typeof groups !== "object" || Array.isArray(groups)) { return []; }
    return Object.keys(groups).map(function (name, i) {
      return [[key, name], name, PALETTE[i % PALETTE.length]];
    });
  }

  function column(data, path) {
    return Array.isArray(path) ? data[path[0]][path[1]] : data[path];
  }

  // A box beside the cursor with the point's time and every series' value, with units.
  function tooltip(spec, granularity) {
    var box;
    return {
      hooks: {
        init: function (u) {
          box = document.createElement("div");
          box.className = "chart-tip";
          box.style.display = "none";
          u.over.appendChild(box);
        },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left < 0) { box.style.display = "none"; return; }
          box.textContent = "";
          var head = document.createElement("div");
          head.className = "chart-tip-time";
          head.textContent = when(u.data[0][i], granularity);
          box.appendChild(head);
          u.series.forEach(function (s, k) {
            if (k === 0 || !s.show) { return; }
            var color = spec.colors[k - 1];
            var line = document.createElement("div");
            var swatch = document.createElement("span");
            swatch.className = "chart-tip-swatch";
            swatch.style.background = color;
            line.appendChild(swatch);
            line.appendChild(document.createTextNode(s.label + ": " + withUnit(u.data[k][i], spec.unit)));
            box.appendChild(line);
          });
          box.style.display = "block";
          var left = u.cursor.left + 12, width = box.offsetWidth;
          if (left + width > u.over.clientWidth) { left = u.cursor.left - width - 12; }
          box.style.left = Math.max(0, left) + "px";
          box.style.top = Math.max(0, u.cursor.top - box.offsetHeight - 8) + "px";
        }
      }
    };
  }

  function draw(el, data) {
    var spec = CHARTS[el.dataset.chart];
    if (!spec || !window.uPlot || !Array.isArray(data.x)) { return; }
    var list = spec.series || dynamicSeries(data, el.dataset.chart);
    // Bars start at their day (align 1), so that each fills its own day of the axis.
    var bars = spec.bars ? window.uPlot.paths.bars({ size: [0.8, 40], align: 1 }) : null;
    var series = [{ value: function (u, v) { return v === null ? "–" : when(v, data.granularity); } }];
    var columns = [data.x];
    spec = Object.assign({}, spec, { colors: list.map(function (s) { return s[2]; }) });
    list.forEach(function (s) {
      series.push({ label: s[1], stroke: s[2], width: 1.5, spanGaps: !spec.gaps,
                    fill: bars ? s[2] + "99" : undefined, paths: bars || undefined,
                    points: bars ? { show: false } : undefined,
                    value: function (u, v) { return withUnit(v, spec.unit); } });
      columns.push(column(data, s[0]));
    });
    var width = Math.max(300, el.clientWidth || 600);
    el.textContent = "";
    var axes = [
      { label: data.granularity === "day" ? "UTC day" : "UTC time", labelSize: 20 },
      { label: spec.unit, labelSize: 20, size: 60,
        values: function (u, vals) { return vals.map(function (v) { return spec.unit === "USD" ? "$" + compact(v) : compact(v); }); } }
    ];
    var xRange = function (u, min, max) {
      return [data.x_min !== null && data.x_min !== undefined ? data.x_min : min,
              data.x_max !== null && data.x_max !== undefined ? data.x_max : max];
    };
    var yRange = function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; };
    // What the axis shows, for people reading the DOM and for the browser tests.
    var showRange = function (u, key) {
      if (key === "x") { el.dataset.xMin = u.scales.x.min; el.dataset.xMax = u.scales.x.max; }
    };
    new window.uPlot({
      width: width, height: 220, series: series, axes: axes, plugins: [tooltip(spec, data.granularity)],
      hooks: { setScale: [showRange] },
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true, range: xRange }, y: { range: yRange } }
    }, columns, el);
  }

  function init() {
    var cache = {};
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var id = el.dataset.source || "chart-data";
      if (!(id in cache)) {
        var source = document.getElementById(id);
        cache[id] = source ? JSON.parse(source.textContent) : null;
      }
      if (cache[id]) { draw(el, cache[id]); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
