/* spendcast page: what every part shares (state, labels, number formats, API calls). */
(function () {
  "use strict";
  const I18N = window.SPENDCAST_I18N;
  const EUR = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
  // axis ticks: compact ("400 M €", "13,3 Md €") so large amounts fit the axis
  const EUR_AXIS = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR", notation: "compact", maximumFractionDigits: 1 });
  const PCT = new Intl.NumberFormat("fr-FR", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const GROWTH = new Intl.NumberFormat("fr-FR", { style: "percent", signDisplay: "exceptZero", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const PTS = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);

  const state = {
    lang: "fr", model: null, series: [], byId: new Map(), current: null, view: "amounts",
    active: -1, chart: null, growthChart: null, fanLevels: [],
  };
  // what the browser tests read: the numbers shown, as the page computed them
  const exposed = (window.__spendcast = {
    ready: false, loaded: false, uid: null, view: "amounts", chart: null, table: [], annual: null,
    contributions: [], growth: null,
  });

  const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || I18N.fr[key] || key;

  window.Spendcast = {
    state, exposed, t, finite,
    $: (id) => document.getElementById(id),
    month: (ds) => String(ds).slice(0, 7),
    eur: (v) => (finite(v) ? EUR.format(v) : "—"),
    eurAxis: (v) => EUR_AXIS.format(v),
    pct: (p) => PCT.format(p),
    growth: (v) => (finite(v) ? GROWTH.format(v / 100) : "—"), // v in percent: 3.2 -> "+3,2 %"
    points: (v) => PTS.format(v),
    label: (uid) => { const s = state.byId.get(uid); return (s && s.label) || uid.split("/").pop(); },
    fill(tbody, rows) { // rows: arrays of cell texts, or {cells, className, data}
      tbody.textContent = "";
      rows.forEach((r) => {
        const tr = document.createElement("tr");
        const cells = Array.isArray(r) ? r : r.cells;
        if (!Array.isArray(r) && r.className) tr.className = r.className;
        if (!Array.isArray(r) && r.data) Object.assign(tr.dataset, r.data);
        cells.forEach((v) => { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
        tbody.appendChild(tr);
      });
    },
    async api(path) {
      const r = await fetch(path, { headers: { Accept: "application/json" } });
      if (!r.ok) {
        let detail = r.statusText;
        try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
        throw new Error(`${path}: ${r.status} ${detail}`);
      }
      return r.json();
    },
    showError(err) {
      const box = document.getElementById("error");
      box.textContent = String(err && err.message ? err.message : err);
      box.hidden = false;
    },
  };
})();
