// Charts for the overview, drawn with the vendored uPlot from data the page embeds
// as JSON (<script type="application/json">), so no inline script is needed.
(function () {
  "use strict";

  var CHARTS = {
    requests: [["requests", "Requests", "#3b6fb6"], ["errors", "Errors", "#c0392b"]],
    tokens: [["input", "Input", "#3b6fb6"], ["output", "Output", "#c96442"],
             ["cache_read", "Cache read", "#7f8c8d"], ["cache_write", "Cache write", "#8e44ad"]],
    cost: [["cost", "Cost", "#27ae60"]],
    latency: [["latency_p50", "Latency p50", "#3b6fb6"], ["latency_p95", "Latency p95", "#1d3b66"],
              ["ttft_p50", "TTFT p50", "#e67e22"], ["ttft_p95", "TTFT p95", "#a04000"]]
  };

  function compact(value) {
    if (value === null || value === undefined) { return ""; }
    var abs = Math.abs(value);
    if (abs >= 1e9) { return (value / 1e9).toFixed(1) + "B"; }
    if (abs >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (abs >= 1e3) { return (value / 1e3).toFixed(1) + "k"; }
    return String(Math.round(value * 100) / 100);
  }

  var PALETTE = ["#3b6fb6", "#c96442", "#27ae60", "#8e44ad", "#e67e22", "#16a085",
                 "#c0392b", "#7f8c8d"];

  // A chart whose series are named by the data ({name: [values]}), e.g. cost per model.
  function dynamicSpec(data, key) {
    var groups = data[key];
    if (!groups || typeof groups !== "object" || Array.isArray(groups)) { return null; }
    return Object.keys(groups).map(function (name, i) {
      return [[key, name], name, PALETTE[i % PALETTE.length]];
    });
  }

  function column(data, path) {
    return Array.isArray(path) ? data[path[0]][path[1]] : data[path];
  }

  function draw(el, data) {
    var spec = CHARTS[el.dataset.chart] || dynamicSpec(data, el.dataset.chart);
    if (!spec || !window.uPlot) { return; }
    var series = [{}], columns = [data.x];
    spec.forEach(function (s) {
      series.push({ label: s[1], stroke: s[2], width: 1.5, spanGaps: true });
      columns.push(column(data, s[0]));
    });
    var width = Math.max(300, el.clientWidth || 600);
    el.textContent = "";
    var axes = [{}, { size: 60, values: function (u, vals) { return vals.map(compact); } }];
    new window.uPlot({ width: width, height: 220, series: series, axes: axes,
                       scales: { x: { time: true } } }, columns, el);
  }

  function init() {
    var source = document.getElementById("chart-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) { draw(el, data); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
