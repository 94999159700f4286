/* spendcast web page: read-only views over the /v1 API (no key, no external request). */
(function () {
  "use strict";
  const I18N = window.SPENDCAST_I18N;
  const EUR = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR" });
  // axis ticks: compact ("400 M €", "13,3 Md €") so large amounts fit the axis
  const EUR_AXIS = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR", notation: "compact", maximumFractionDigits: 1 });
  const PCT = new Intl.NumberFormat("fr-FR", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const PTS = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const FAN_LEVELS = [50, 80, 95];
  const state = { lang: "fr", model: null, series: [], byId: new Map(), current: null, active: -1, chart: null };
  const exposed = (window.__spendcast = { ready: false, uid: null, chart: null, table: [], annual: null, contributions: [] });

  const $ = (id) => document.getElementById(id);
  const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || I18N.fr[key] || key;
  const eur = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "—" : EUR.format(v));
  const month = (ds) => String(ds).slice(0, 7);

  async function api(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" } });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${path}: ${r.status} ${detail}`);
    }
    return r.json();
  }

  function showError(err) {
    const box = $("error");
    box.textContent = String(err && err.message ? err.message : err);
    box.hidden = false;
  }

  function applyLabels() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $("lang-toggle").textContent = t("lang_other");
    $("lang-toggle").setAttribute("aria-pressed", String(state.lang === "en"));
    if (state.current) $("series-title").textContent = state.current;
    if (exposed.table.length) renderTable(exposed.table);
  }

  /* ---- picker: a tree in hierarchy order, filtered by the search box ---- */
  function depth(s) { return s.unique_id.split("/").length; }
  function orderedSeries(list) {
    const children = new Map();
    list.forEach((s) => {
      const p = s.parent || "";
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(s);
    });
    children.forEach((v) => v.sort((a, b) => a.unique_id.localeCompare(b.unique_id)));
    const out = [];
    const seen = new Set();
    const visit = (s) => {
      if (seen.has(s.unique_id)) return;
      seen.add(s.unique_id); out.push(s);
      (children.get(s.unique_id) || []).forEach(visit);
    };
    list.filter((s) => !s.parent || !state.byId.has(s.parent)).forEach(visit);
    list.forEach(visit);
    return out;
  }

  function visibleItems() { return Array.from($("picker").querySelectorAll("li:not([hidden])")); }

  function renderPicker() {
    const ul = $("picker");
    ul.textContent = "";
    orderedSeries(state.series).forEach((s) => {
      const li = document.createElement("li");
      li.setAttribute("role", "treeitem");
      li.setAttribute("aria-level", String(depth(s)));
      li.setAttribute("aria-selected", "false");
      li.id = "opt-" + encodeURIComponent(s.unique_id).replace(/%/g, "_");
      li.dataset.uid = s.unique_id;
      li.textContent = s.unique_id.split("/").pop();
      li.title = s.unique_id;
      li.addEventListener("click", () => { setActive(visibleItems().indexOf(li)); choose(s.unique_id); });
      ul.appendChild(li);
    });
  }

  function filterPicker() {
    const q = $("search").value.trim().toLowerCase();
    const items = Array.from($("picker").querySelectorAll("li"));
    const keep = new Set();
    items.forEach((li) => {
      if (!q || li.dataset.uid.toLowerCase().includes(q)) {
        // keep the match and its ancestors so the hierarchy stays readable
        const parts = li.dataset.uid.split("/");
        for (let i = 1; i <= parts.length; i++) keep.add(parts.slice(0, i).join("/"));
      }
    });
    items.forEach((li) => { li.hidden = !keep.has(li.dataset.uid); });
    const vis = visibleItems();
    const firstMatch = q ? vis.findIndex((li) => li.dataset.uid.toLowerCase().includes(q)) : 0;
    setActive(firstMatch);
  }

  function setActive(i) {
    const vis = visibleItems();
    vis.forEach((li) => li.classList.remove("active"));
    if (!vis.length) { state.active = -1; $("picker").removeAttribute("aria-activedescendant"); return; }
    state.active = Math.max(0, Math.min(i, vis.length - 1));
    const li = vis[state.active];
    li.classList.add("active");
    $("picker").setAttribute("aria-activedescendant", li.id);
    $("search").setAttribute("aria-activedescendant", li.id);
    li.scrollIntoView({ block: "nearest" });
  }

  function pickerKeys(ev) {
    const vis = visibleItems();
    if (ev.key === "ArrowDown") { setActive(state.active + 1); ev.preventDefault(); }
    else if (ev.key === "ArrowUp") { setActive(state.active - 1); ev.preventDefault(); }
    else if (ev.key === "Home") { setActive(0); ev.preventDefault(); }
    else if (ev.key === "End") { setActive(vis.length - 1); ev.preventDefault(); }
    else if (ev.key === "Enter" || (ev.key === " " && ev.currentTarget.id === "picker")) {
      if (state.active >= 0 && vis[state.active]) choose(vis[state.active].dataset.uid);
      ev.preventDefault();
    }
  }

  /* ---- the chosen series ---- */
  async function choose(uid) {
    state.current = uid;
    exposed.ready = false;
    exposed.uid = uid;
    document.querySelectorAll("#picker li").forEach((li) => li.setAttribute("aria-selected", String(li.dataset.uid === uid)));
    $("series-title").textContent = uid;
    const levels = state.model.levels.filter((l) => FAN_LEVELS.includes(l));
    const fan = levels.length ? levels : state.model.levels.slice();
    const q = "unique_id=" + encodeURIComponent(uid);
    const lv = fan.map((l) => "&level=" + l).join("");
    $("csv-link").href = `/v1/forecast?${q}${lv}&format=csv`;
    try {
      const [fc, hist, stored] = await Promise.all([
        api(`/v1/forecast?${q}${lv}`),
        api(`/v1/anomalies/historical?${q}`),
        api(`/v1/anomalies?${q}&limit=10000`),
      ]);
      if (state.current !== uid) return;
      drawChart(uid, fc, hist, stored);
      exposed.table = lastMonths(hist, stored);
      renderTable(exposed.table);
      fillYears(hist, fc);
      await Promise.all([refreshAnnual(), contributions(uid, hist)]);
      if (state.current === uid) exposed.ready = true;
    } catch (err) { showError(err); }
  }

  function storedByMonth(stored) {
    const m = new Map();
    stored.results.forEach((r) => m.set(month(r.ds), r)); // oldest first: the latest revision wins
    return m;
  }

  function drawChart(uid, fc, hist, stored) {
    const hds = hist.results.map((r) => month(r.ds));
    const fds = fc.ds.map(month);
    const flagged = new Set(hist.results.filter((r) => r.is_anomaly).map((r) => month(r.ds)));
    storedByMonth(stored).forEach((r, m) => { if (r.is_anomaly) flagged.add(m); else flagged.delete(m); });
    const months = Array.from(new Set(hds.concat(fds))).sort();
    const yOf = new Map(hist.results.map((r) => [month(r.ds), r.y]));
    storedByMonth(stored).forEach((r, m) => { if (!yOf.has(m)) yOf.set(m, r.y); });
    const fIdx = new Map(fds.map((m, i) => [m, i]));
    const x = months.map((m) => Date.UTC(+m.slice(0, 4), +m.slice(5, 7) - 1, 1) / 1000);
    const observed = months.map((m) => (yOf.has(m) ? yOf.get(m) : null));
    const mean = months.map((m) => (fIdx.has(m) ? fc.mean[fIdx.get(m)] : null));
    const anomalies = months.map((m) => (flagged.has(m) && yOf.has(m) ? yOf.get(m) : null));
    const intervals = fc.intervals.slice().sort((a, b) => b.level - a.level); // widest first
    const series = [{}, { label: t("history"), stroke: "#1b1b1b", width: 1.5 },
      { label: t("forecast"), stroke: "#000091", width: 2, dash: [6, 3] }];
    const data = [x, observed, mean];
    const bands = [];
    const shades = { 50: "rgba(0,0,145,0.35)", 80: "rgba(0,0,145,0.22)", 95: "rgba(0,0,145,0.12)" };
    const bandOut = {};
    intervals.forEach((iv) => {
      const lo = months.map((m) => (fIdx.has(m) ? iv.lo[fIdx.get(m)] : null));
      const hi = months.map((m) => (fIdx.has(m) ? iv.hi[fIdx.get(m)] : null));
      series.push({ label: `${t("band")} ${iv.level} % (haut)`, stroke: "rgba(0,0,145,0.3)", width: 0.5 });
      series.push({ label: `${t("band")} ${iv.level} % (bas)`, stroke: "rgba(0,0,145,0.3)", width: 0.5 });
      data.push(hi, lo);
      bands.push({ series: [data.length - 2, data.length - 1], fill: shades[iv.level] || "rgba(0,0,145,0.15)" });
      bandOut[iv.level] = { lo: iv.lo.slice(), hi: iv.hi.slice() };
    });
    series.push({ label: t("anomalies"), stroke: "#c9191e", paths: () => null,
      points: { show: true, size: 9, fill: "#c9191e", stroke: "#c9191e" } });
    data.push(anomalies);
    const el = $("chart");
    if (state.chart) state.chart.destroy();
    const width = Math.max(480, Math.min(el.parentElement.clientWidth || 900, 1100));
    state.chart = new uPlot({
      width, height: 340, series, bands,
      scales: { x: { time: true } },
      axes: [{}, { size: 110, values: (u, vals) => vals.map((v) => EUR_AXIS.format(v)) }],
      legend: { show: false },
    }, data, el);
    const nAnom = anomalies.filter((v) => v !== null).length;
    el.setAttribute("aria-label", t("chart_alt").replace("{id}", uid).replace("{n}", String(hds.length))
      .replace("{h}", String(fds.length)).replace("{a}", String(nAnom)));
    exposed.chart = {
      unique_id: uid, model_version: fc.model_version, months: months,
      forecast_ds: fds, mean: fc.mean.slice(), bands: bandOut,
      observed_ds: hds, observed: hist.results.map((r) => r.y),
      anomaly_months: months.filter((m, i) => anomalies[i] !== null),
      plotted: data.map((col) => col.slice()),
    };
  }

  function lastMonths(hist, stored) {
    const rows = new Map();
    hist.results.forEach((r) => rows.set(month(r.ds), r));
    storedByMonth(stored).forEach((r, m) => rows.set(m, r));
    return Array.from(rows.keys()).sort().slice(-12).map((m) => {
      const r = rows.get(m);
      return { month: m, y: r.y, expected: r.expected, lo: r.lo, hi: r.hi, status: r.status, is_anomaly: r.is_anomaly };
    });
  }

  function renderTable(rows) {
    const tb = $("months").querySelector("tbody");
    tb.textContent = "";
    rows.forEach((r) => {
      const tr = document.createElement("tr");
      if (r.is_anomaly) tr.className = "anomaly";
      [r.month, eur(r.y), eur(r.expected), eur(r.lo), eur(r.hi), t(r.status)].forEach((v) => {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      tr.dataset.status = r.status;
      tb.appendChild(tr);
    });
  }

  function fillYears(hist, fc) {
    const sel = $("year");
    const ds = hist.results.map((r) => month(r.ds)).concat(fc.ds.map(month)).sort();
    if (!ds.length) return;
    const first = +ds[0].slice(0, 4), last = +ds[ds.length - 1].slice(0, 4);
    const lastObs = hist.results.length ? +month(hist.results[hist.results.length - 1].ds).slice(0, 4) : last;
    const keep = sel.value;
    sel.textContent = "";
    for (let y = last; y >= first; y--) {
      const o = document.createElement("option"); o.value = String(y); o.textContent = String(y); sel.appendChild(o);
    }
    const lastObsMonth = hist.results.length ? month(hist.results[hist.results.length - 1].ds) : "";
    const defaultYear = lastObsMonth.endsWith("-12") ? lastObs + 1 : lastObs;
    sel.value = keep && +keep >= first && +keep <= last ? keep : String(Math.min(defaultYear, last));
  }

  let annualSeq = 0;
  async function refreshAnnual() {
    const uid = state.current;
    if (!uid || !$("year").value) return;
    const seq = ++annualSeq;
    const budgetRaw = $("budget").value.trim();
    const budget = budgetRaw === "" ? null : Number(budgetRaw);
    let url = `/v1/projections/annual?unique_id=${encodeURIComponent(uid)}&year=${$("year").value}`;
    if (budget !== null && Number.isFinite(budget)) url += `&budget=${budget}`;
    try {
      const p = await api(url);
      if (seq !== annualSeq) return;
      exposed.annual = p;
      $("observed-total").textContent = `${eur(p.observed_total)} (${p.months_observed} ${state.lang === "fr" ? "mois" : "months"})`;
      $("projected-total").textContent = `${eur(p.projected_total)} (${p.months_projected} ${state.lang === "fr" ? "mois" : "months"})`;
      $("annual-total").textContent = eur(p.total);
      $("annual-interval").textContent = p.intervals.map((iv) => `${iv.level} % : ${eur(iv.lo)} – ${eur(iv.hi)}`).join(" ; ") || "—";
      const prob = $("prob");
      if (p.prob_over_budget === null || p.prob_over_budget === undefined) {
        prob.textContent = "—"; prob.removeAttribute("data-prob"); $("prob-bar").style.width = "0";
      } else {
        prob.textContent = PCT.format(p.prob_over_budget);
        prob.dataset.prob = String(p.prob_over_budget);
        $("prob-bar").style.width = (100 * p.prob_over_budget).toFixed(1) + "%";
      }
      $("annual").dataset.seq = String(seq);
      $("annual").dataset.budget = budget === null ? "" : String(budget);
    } catch (err) { showError(err); }
  }

  /* contribution of each child to the parent's growth: sum of the last 12 months minus the
     12 before, over the parent's sum of the 12 before, in percentage points */
  async function contributions(uid, parentHist) {
    const kids = state.series.filter((s) => s.parent === uid).map((s) => s.unique_id).sort();
    const box = $("contrib"), tb = $("contrib-table").querySelector("tbody");
    box.textContent = ""; tb.textContent = "";
    exposed.contributions = [];
    if (!kids.length) { box.textContent = t("no_children"); return; }
    const sums = (hist) => {
      const ys = hist.results.map((r) => r.y);
      const last = ys.slice(-12), prev = ys.slice(-24, -12);
      const add = (a) => a.reduce((s, v) => s + v, 0);
      return { last: add(last), prev: add(prev), ok: prev.length === 12 };
    };
    const parent = sums(parentHist);
    const hists = await Promise.all(kids.map((k) => api(`/v1/anomalies/historical?unique_id=${encodeURIComponent(k)}`)));
    if (state.current !== uid) return;
    const rows = kids.map((k, i) => {
      const s = sums(hists[i]);
      const change = s.last - s.prev;
      const points = parent.ok && parent.prev !== 0 ? (100 * change) / parent.prev : null;
      return { unique_id: k, change, points };
    });
    exposed.contributions = rows;
    const maxAbs = Math.max(1e-12, ...rows.map((r) => Math.abs(r.points || 0)));
    rows.forEach((r) => {
      const row = document.createElement("div"); row.className = "row";
      const name = document.createElement("span"); name.textContent = r.unique_id.split("/").pop();
      const track = document.createElement("div"); track.className = "track";
      const fill = document.createElement("div"); fill.className = "fill" + ((r.points || 0) < 0 ? " neg" : "");
      const w = (50 * Math.abs(r.points || 0)) / maxAbs;
      fill.style.width = w + "%";
      fill.style.left = (r.points || 0) < 0 ? 50 - w + "%" : "50%";
      track.appendChild(fill); row.appendChild(name); row.appendChild(track); box.appendChild(row);
      const tr = document.createElement("tr");
      [r.unique_id, eur(r.change), r.points === null ? "—" : PTS.format(r.points)].forEach((v) => {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
  }

  async function start() {
    $("lang-toggle").addEventListener("click", () => { state.lang = state.lang === "fr" ? "en" : "fr"; applyLabels(); });
    $("search").addEventListener("input", filterPicker);
    $("search").addEventListener("keydown", pickerKeys);
    $("picker").addEventListener("keydown", pickerKeys);
    $("picker").addEventListener("focus", () => { if (state.active < 0) setActive(0); });
    $("year").addEventListener("change", refreshAnnual);
    let timer = null;
    $("budget").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refreshAnnual, 250); });
    $("annual-form").addEventListener("submit", (ev) => { ev.preventDefault(); refreshAnnual(); });
    try {
      const [model, list] = await Promise.all([api("/v1/model"), api("/v1/series")]);
      state.model = model;
      $("run-id").textContent = model.run_id || "—";
      $("model-info").title = `${model.name || ""} v${model.version || "?"} (${model.alias || ""})`;
      state.series = list.series;
      state.byId = new Map(list.series.map((s) => [s.unique_id, s]));
      renderPicker();
      setActive(0);
      exposed.loaded = true;
    } catch (err) { showError(err); }
    applyLabels();
  }

  start();
})();
