/* uPlot charts with interval bands, shared by the amounts and growth views. */
(function () {
  "use strict";
  const S = window.Spendcast;
  const SHADES = { 50: "rgba(0,0,145,0.35)", 80: "rgba(0,0,145,0.22)", 90: "rgba(0,0,145,0.16)", 95: "rgba(0,0,145,0.12)", 99: "rgba(0,0,145,0.08)" };

  const toX = (months) => months.map((m) => Date.UTC(+m.slice(0, 4), +m.slice(5, 7) - 1, 1) / 1000);

  function legend(ul, items) {
    ul.textContent = "";
    items.forEach((it) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch" + (it.kind ? " " + it.kind : "");
      sw.style.borderColor = it.color;
      if (it.kind === "band" || it.kind === "point") sw.style.background = it.color;
      li.appendChild(sw);
      li.appendChild(document.createTextNode(it.label));
      ul.appendChild(li);
    });
  }

  /* spec: months (YYYY-MM), lines [{label, values, stroke, width, dash}], bands [{level, lo, hi}],
     points [{label, values, color}] drawn last, yFormat(v) for the axis, legend (an <ul>).
     The data columns are: x, the lines, (hi, lo) per band widest first, the points. */
  function draw(el, previous, spec) {
    const series = [{}];
    const data = [toX(spec.months)];
    const bands = [];
    const items = [];
    spec.lines.forEach((l) => {
      series.push({ label: l.label, stroke: l.stroke, width: l.width || 1.5, dash: l.dash, points: { show: false } });
      data.push(l.values);
      if (!l.hideLegend) items.push({ label: l.label, color: l.stroke, kind: l.dash ? "dash" : "line" });
    });
    spec.bands.slice().sort((a, b) => b.level - a.level).forEach((b) => {
      const shade = SHADES[b.level] || "rgba(0,0,145,0.15)";
      const edge = { stroke: "rgba(0,0,145,0.3)", width: 0.5, points: { show: false } };
      series.push({ label: `${S.t("band")} ${b.level} % (haut)`, ...edge });
      series.push({ label: `${S.t("band")} ${b.level} % (bas)`, ...edge });
      data.push(b.hi, b.lo);
      bands.push({ series: [data.length - 2, data.length - 1], fill: shade });
      items.push({ label: `${S.t("band")} ${b.level} %`, color: shade, kind: "band" });
    });
    (spec.points || []).forEach((p) => {
      series.push({ label: p.label, stroke: p.color, paths: () => null, points: { show: true, size: 9, fill: p.color, stroke: p.color } });
      data.push(p.values);
      items.push({ label: p.label, color: p.color, kind: "point" });
    });
    if (previous) previous.destroy();
    const width = Math.max(480, Math.min(el.parentElement.clientWidth || 900, 1100));
    const chart = new uPlot({
      width, height: spec.height || 340, series, bands,
      scales: { x: { time: true } },
      axes: [{}, { size: 110, values: (u, vals) => vals.map(spec.yFormat) }],
      legend: { show: false },
    }, data, el);
    if (spec.legend) legend(spec.legend, items);
    return { chart, data };
  }

  window.SpendcastCharts = { draw };
})();
