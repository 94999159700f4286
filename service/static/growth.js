/* The growth view: year on year, rolling 12 months, year to date (PCAP) and the adjusted
   series (CJO-CVS), observed and projected, from GET /v1/growth. */
(function () {
  "use strict";
  const S = window.Spendcast;
  const C = window.SpendcastCharts;
  const { state, exposed, $ } = S;
  let shown = null; // the /v1/growth answer of the current series

  const months = (g) => g.months.map((m) => S.month(m.ds));

  /* values of the chosen indicator, month by month */
  function indicatorValues(g, ind) {
    if (ind === "adjusted") {
      const adj = new Map(g.adjusted.months.map((m) => [S.month(m.ds), m.yoy_pct]));
      return g.months.map((m) => (adj.has(S.month(m.ds)) ? adj.get(S.month(m.ds)) : null));
    }
    return g.months.map((m) => m[ind]);
  }

  function chartSpec(g, ind) {
    const all = indicatorValues(g, ind);
    const first = Math.max(0, all.findIndex((v) => S.finite(v)));
    const ms = months(g).slice(first);
    const vals = all.slice(first);
    const src = g.months.slice(first).map((m) => m.source);
    const lastObs = src.lastIndexOf("observed");
    const observed = vals.map((v, i) => (src[i] === "observed" ? v : null));
    const projected = vals.map((v, i) => (src[i] === "projected" || i === lastObs ? v : null));
    const bands = [];
    if (ind !== "adjusted") {
      const levels = state.fanLevels.filter((l) => g.levels.includes(l));
      levels.forEach((level) => {
        const pick = (side) => g.months.slice(first).map((m) => {
          if (!m.intervals) return null;
          const b = m.intervals[ind].find((x) => x.level === level);
          return b ? b[side] : null;
        });
        bands.push({ level, lo: pick("lo"), hi: pick("hi") });
      });
    }
    return {
      months: ms, observed, projected, bands,
      lines: [
        { label: S.t("zero"), values: ms.map(() => 0), stroke: "#888", width: 1, hideLegend: true },
        { label: S.t("growth_observed"), values: observed, stroke: "#1b1b1b", width: 1.8 },
        { label: S.t("growth_projected"), values: projected, stroke: "#000091", width: 2, dash: [6, 3] },
      ],
      yFormat: (v) => S.growth(v),
      legend: $("growth-legend"),
    };
  }

  function tableRows(g, level) {
    const adj = new Map(g.adjusted.months.map((m) => [S.month(m.ds), m.mom_pct]));
    const lastObs = g.months.map((m) => m.source).lastIndexOf("observed");
    return g.months.slice(Math.max(0, lastObs - 11)).map((m) => {
      const b = m.intervals ? m.intervals.yoy_pct.find((x) => x.level === level) : null;
      return {
        month: S.month(m.ds), source: m.source, value: m.value, yoy_pct: m.yoy_pct,
        lo: b ? b.lo : null, hi: b ? b.hi : null,
        rolling_12m_growth_pct: m.rolling_12m_growth_pct, ytd_growth_pct: m.ytd_growth_pct,
        adjusted_mom_pct: adj.has(S.month(m.ds)) ? adj.get(S.month(m.ds)) : null,
      };
    });
  }

  function note(a) {
    if (!a.available) return S.t("adj_none").replace("{why}", a.method);
    if (!a.working_day_correction) return S.t("adj_plain");
    const e = a.multiplicative ? S.growth(a.working_day_effect) : S.eur(a.working_day_effect);
    return S.t("adj_fr").replace("{e}", e);
  }

  function render() {
    const g = shown;
    if (!g) return;
    const ind = $("indicator").value;
    const spec = chartSpec(g, ind);
    const drawn = C.draw($("growth-chart"), state.growthChart, spec);
    state.growthChart = drawn.chart;
    const level = Math.max(...state.fanLevels.filter((l) => g.levels.includes(l)), 0) || Math.max(...g.levels);
    const rows = tableRows(g, level);
    $("growth-interval-head").textContent = `${S.t("col_interval")} ${level} %`;
    S.fill($("growth-table").querySelector("tbody"), rows.map((r) => ({
      cells: [r.month + (r.source === "projected" ? ` (${S.t("projected")})` : ""), S.eur(r.value),
        S.growth(r.yoy_pct), r.lo === null ? "—" : `${S.growth(r.lo)} ; ${S.growth(r.hi)}`,
        S.growth(r.rolling_12m_growth_pct), S.growth(r.ytd_growth_pct), S.growth(r.adjusted_mom_pct)],
      className: r.source, data: { month: r.month },
    })));
    $("adjusted-note").textContent = note(g.adjusted);
    const nObs = g.months.filter((m) => m.source === "observed").length;
    $("growth-chart").setAttribute("aria-label", S.t("growth_alt").replace("{id}", g.label)
      .replace("{ind}", $("indicator").selectedOptions[0].textContent)
      .replace("{n}", String(nObs)).replace("{h}", String(g.months.length - nObs)));
    exposed.growth = {
      unique_id: g.unique_id, indicator: ind, months: spec.months, observed: spec.observed,
      projected: spec.projected, table: rows, level,
      bands: Object.fromEntries(spec.bands.map((b) => [b.level, { lo: b.lo, hi: b.hi }])),
      plotted: drawn.data.map((col) => col.slice()),
    };
  }

  async function load(uid) {
    const lv = state.fanLevels.map((l) => "&level=" + l).join("");
    const g = await S.api(`/v1/growth?unique_id=${encodeURIComponent(uid)}${lv}`);
    if (state.current === uid) shown = g;
    return g;
  }

  window.SpendcastGrowth = { load, render };
})();
