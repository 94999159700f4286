/* spendcast web page: read-only views over the /v1 API (no key, no external request).
   The chosen series and view are in the URL (/?series=total/pharmacie&view=growth). */
(function () {
  "use strict";
  const S = window.Spendcast;
  const C = window.SpendcastCharts;
  const G = window.SpendcastGrowth;
  const { state, exposed, $, t } = S;
  const FAN_LEVELS = [50, 80, 95];
  const VIEWS = ["amounts", "growth"];

  function applyLabels() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $("lang-toggle").textContent = t("lang_other");
    $("lang-toggle").setAttribute("aria-pressed", String(state.lang === "en"));
    $("view-toggle").setAttribute("aria-label", t("view"));
    if (state.current) $("series-title").textContent = S.label(state.current);
    if (exposed.table.length) renderTable(exposed.table);
    if (state.amounts) drawChart(...state.amounts);
    if (exposed.annual) showAnnual(exposed.annual);
    if (state.view === "growth") G.render();
  }

  /* ---- picker: a tree in hierarchy order, filtered by the search box ---- */
  const fold = (s) => s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  function orderedSeries(list) {
    const children = new Map();
    list.forEach((s) => {
      const p = s.parent || "";
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(s);
    });
    children.forEach((v) => v.sort((a, b) => a.label.localeCompare(b.label, "fr")));
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
      li.setAttribute("aria-level", String(s.unique_id.split("/").length));
      li.setAttribute("aria-selected", "false");
      li.id = "opt-" + encodeURIComponent(s.unique_id).replace(/%/g, "_");
      li.dataset.uid = s.unique_id;
      li.dataset.search = fold(s.label + " " + s.unique_id);
      li.textContent = s.label;
      li.title = s.unique_id;
      li.addEventListener("click", () => { setActive(visibleItems().indexOf(li)); navigate(s.unique_id); });
      ul.appendChild(li);
    });
  }

  function filterPicker() {
    const q = fold($("search").value.trim());
    const items = Array.from($("picker").querySelectorAll("li"));
    const keep = new Set();
    items.forEach((li) => {
      if (!q || li.dataset.search.includes(q)) {
        // keep the match and its ancestors so the hierarchy stays readable
        const parts = li.dataset.uid.split("/");
        for (let i = 1; i <= parts.length; i++) keep.add(parts.slice(0, i).join("/"));
      }
    });
    items.forEach((li) => { li.hidden = !keep.has(li.dataset.uid); });
    const vis = visibleItems();
    setActive(q ? vis.findIndex((li) => li.dataset.search.includes(q)) : 0);
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
      if (state.active >= 0 && vis[state.active]) navigate(vis[state.active].dataset.uid);
      ev.preventDefault();
    }
  }

  /* ---- the URL: ?series=ID&view=growth; back/forward restore both ---- */
  function fromUrl() {
    const q = new URLSearchParams(window.location.search);
    const uid = q.get("series");
    const view = VIEWS.includes(q.get("view")) ? q.get("view") : "amounts";
    return { uid: uid && state.byId.has(uid) ? uid : "total", asked: uid, view };
  }

  function urlFor(uid, view) {
    const id = encodeURIComponent(uid).replace(/%2F/gi, "/"); // keep the id readable
    return `/?series=${id}` + (view === "growth" ? "&view=growth" : "");
  }

  function navigate(uid, view) {
    const v = view || state.view;
    if (!uid || (uid === state.current && v === state.view)) return;
    window.history.pushState({ uid, view: v }, "", urlFor(uid, v));
    showView(v);
    if (uid !== state.current) choose(uid);
  }

  function showView(view) {
    state.view = exposed.view = view;
    $("amounts-view").hidden = view !== "amounts";
    $("growth-view").hidden = view !== "growth";
    document.querySelectorAll("#view-toggle button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.view === view)));
    if (view === "growth") G.render();
  }

  /* ---- the chosen series ---- */
  async function choose(uid) {
    state.current = uid;
    exposed.ready = false;
    exposed.uid = uid;
    document.querySelectorAll("#picker li").forEach((li) => li.setAttribute("aria-selected", String(li.dataset.uid === uid)));
    $("series-title").textContent = S.label(uid);
    $("series-id").textContent = uid;
    const q = "unique_id=" + encodeURIComponent(uid);
    const lv = state.fanLevels.map((l) => "&level=" + l).join("");
    $("csv-link").href = `/v1/forecast?${q}${lv}&format=csv`;
    try {
      const [fc, hist, stored] = await Promise.all([
        S.api(`/v1/forecast?${q}${lv}`),
        S.api(`/v1/anomalies/historical?${q}`),
        S.api(`/v1/anomalies?${q}&limit=10000`),
        G.load(uid),
      ]);
      if (state.current !== uid) return;
      state.amounts = [uid, fc, hist, stored];
      drawChart(uid, fc, hist, stored);
      exposed.table = lastMonths(hist, stored);
      renderTable(exposed.table);
      if (state.view === "growth") G.render();
      fillYears(hist, fc);
      await Promise.all([refreshAnnual(), contributions(uid, hist)]);
      if (state.current === uid) exposed.ready = true;
    } catch (err) { S.showError(err); }
  }

  function storedByMonth(stored) {
    const m = new Map();
    stored.results.forEach((r) => m.set(S.month(r.ds), r)); // oldest first: the latest revision wins
    return m;
  }

  function drawChart(uid, fc, hist, stored) {
    const hds = hist.results.map((r) => S.month(r.ds));
    const fds = fc.ds.map(S.month);
    const flagged = new Set(hist.results.filter((r) => r.is_anomaly).map((r) => S.month(r.ds)));
    storedByMonth(stored).forEach((r, m) => { if (r.is_anomaly) flagged.add(m); else flagged.delete(m); });
    const months = Array.from(new Set(hds.concat(fds))).sort();
    const yOf = new Map(hist.results.map((r) => [S.month(r.ds), r.y]));
    storedByMonth(stored).forEach((r, m) => { if (!yOf.has(m)) yOf.set(m, r.y); });
    const fIdx = new Map(fds.map((m, i) => [m, i]));
    const at = (arr) => months.map((m) => (fIdx.has(m) ? arr[fIdx.get(m)] : null));
    const anomalies = months.map((m) => (flagged.has(m) && yOf.has(m) ? yOf.get(m) : null));
    const drawn = C.draw($("chart"), state.chart, {
      months,
      lines: [
        { label: t("history"), values: months.map((m) => (yOf.has(m) ? yOf.get(m) : null)), stroke: "#1b1b1b", width: 1.5 },
        { label: t("forecast"), values: at(fc.mean), stroke: "#000091", width: 2, dash: [6, 3] },
      ],
      bands: fc.intervals.map((iv) => ({ level: iv.level, lo: at(iv.lo), hi: at(iv.hi) })),
      points: [{ label: t("anomalies"), values: anomalies, color: "#c9191e" }],
      yFormat: (v) => S.eurAxis(v),
      legend: $("chart-legend"),
    });
    state.chart = drawn.chart;
    const nAnom = anomalies.filter((v) => v !== null).length;
    $("chart").setAttribute("aria-label", t("chart_alt").replace("{id}", S.label(uid)).replace("{n}", String(hds.length))
      .replace("{h}", String(fds.length)).replace("{a}", String(nAnom)));
    exposed.chart = {
      unique_id: uid, model_version: fc.model_version, months,
      forecast_ds: fds, mean: fc.mean.slice(),
      bands: Object.fromEntries(fc.intervals.map((iv) => [iv.level, { lo: iv.lo.slice(), hi: iv.hi.slice() }])),
      observed_ds: hds, observed: hist.results.map((r) => r.y),
      anomaly_months: months.filter((m, i) => anomalies[i] !== null),
      plotted: drawn.data.map((col) => col.slice()),
    };
  }

  function lastMonths(hist, stored) {
    const rows = new Map();
    hist.results.forEach((r) => rows.set(S.month(r.ds), r));
    storedByMonth(stored).forEach((r, m) => rows.set(m, r));
    return Array.from(rows.keys()).sort().slice(-12).map((m) => {
      const r = rows.get(m);
      return { month: m, y: r.y, expected: r.expected, lo: r.lo, hi: r.hi, status: r.status, is_anomaly: r.is_anomaly };
    });
  }

  function renderTable(rows) {
    S.fill($("months").querySelector("tbody"), rows.map((r) => ({
      cells: [r.month, S.eur(r.y), S.eur(r.expected), S.eur(r.lo), S.eur(r.hi), t(r.status)],
      className: r.is_anomaly ? "anomaly" : "", data: { status: r.status },
    })));
  }

  function fillYears(hist, fc) {
    const sel = $("year");
    const ds = hist.results.map((r) => S.month(r.ds)).concat(fc.ds.map(S.month)).sort();
    if (!ds.length) return;
    const first = +ds[0].slice(0, 4), last = +ds[ds.length - 1].slice(0, 4);
    const lastObsMonth = hist.results.length ? S.month(hist.results[hist.results.length - 1].ds) : "";
    const lastObs = lastObsMonth ? +lastObsMonth.slice(0, 4) : last;
    const keep = sel.value;
    sel.textContent = "";
    for (let y = last; y >= first; y--) {
      const o = document.createElement("option"); o.value = String(y); o.textContent = String(y); sel.appendChild(o);
    }
    const defaultYear = lastObsMonth.endsWith("-12") ? lastObs + 1 : lastObs;
    sel.value = keep && +keep >= first && +keep <= last ? keep : String(Math.min(defaultYear, last));
  }

  const numberIn = (id) => { const raw = $(id).value.trim(); const v = raw === "" ? null : Number(raw); return v !== null && Number.isFinite(v) ? v : null; };

  let annualSeq = 0;
  async function refreshAnnual() {
    const uid = state.current;
    if (!uid || !$("year").value) return;
    const seq = ++annualSeq;
    const budget = numberIn("budget"), target = numberIn("target");
    let url = `/v1/projections/annual?unique_id=${encodeURIComponent(uid)}&year=${$("year").value}`;
    if (budget !== null) url += `&budget=${budget}`;
    if (target !== null) url += `&target_growth=${target}`;
    try {
      const p = await S.api(url);
      if (seq !== annualSeq) return;
      exposed.annual = p;
      showAnnual(p);
      $("annual").dataset.seq = String(seq);
      $("annual").dataset.budget = budget === null ? "" : String(budget);
      $("annual").dataset.target = target === null ? "" : String(target);
    } catch (err) { S.showError(err); }
  }

  function probability(id, value) {
    const el = $(id);
    if (value === null || value === undefined) {
      el.textContent = "—"; el.removeAttribute("data-prob"); $(id + "-bar").style.width = "0";
    } else {
      el.textContent = S.pct(value); el.dataset.prob = String(value);
      $(id + "-bar").style.width = (100 * value).toFixed(1) + "%";
    }
  }

  function showAnnual(p) {
    const n = (k) => `${k} ${t("months_word")}`;
    $("observed-total").textContent = `${S.eur(p.observed_total)} (${n(p.months_observed)})`;
    $("projected-total").textContent = `${S.eur(p.projected_total)} (${n(p.months_projected)})`;
    $("annual-total").textContent = S.eur(p.total);
    const g = p.growth;
    $("growth-label").textContent = t("annual_growth_vs").replace("{y}", g ? String(g.previous_year) : String(p.year - 1));
    $("annual-growth").textContent = g ? S.growth(g.growth_pct) : "—";
    $("annual-growth").dataset.growth = g && S.finite(g.growth_pct) ? String(g.growth_pct) : "";
    S.fill($("annual-intervals").querySelector("tbody"), p.intervals.map((iv) => [`${iv.level} %`, S.eur(iv.lo), S.eur(iv.hi)]));
    S.fill($("growth-intervals").querySelector("tbody"), (g ? g.intervals : []).map((iv) => [`${iv.level} %`, S.growth(iv.lo), S.growth(iv.hi)]));
    $("annual-intervals").hidden = !p.intervals.length;
    $("growth-intervals").hidden = !(g && g.intervals.length);
    probability("prob", p.prob_over_budget);
    probability("prob-growth", g ? g.prob_over_target : null);
  }

  /* contribution of each child to the parent's growth: sum of the last 12 months minus the
     12 before, over the parent's sum of the 12 before, in percentage points */
  async function contributions(uid, parentHist) {
    const kids = state.series.filter((s) => s.parent === uid).map((s) => s.unique_id)
      .sort((a, b) => S.label(a).localeCompare(S.label(b), "fr"));
    const box = $("contrib"), tb = $("contrib-table").querySelector("tbody");
    box.textContent = ""; tb.textContent = "";
    exposed.contributions = [];
    if (!kids.length) { box.textContent = t("no_children"); return; }
    const sums = (hist) => {
      const ys = hist.results.map((r) => r.y);
      const add = (a) => a.reduce((s, v) => s + v, 0);
      return { last: add(ys.slice(-12)), prev: add(ys.slice(-24, -12)), ok: ys.length >= 24 };
    };
    const parent = sums(parentHist);
    const hists = await Promise.all(kids.map((k) => S.api(`/v1/anomalies/historical?unique_id=${encodeURIComponent(k)}`)));
    if (state.current !== uid) return;
    const rows = kids.map((k, i) => {
      const s = sums(hists[i]);
      const change = s.last - s.prev;
      const points = parent.ok && parent.prev !== 0 ? (100 * change) / parent.prev : null;
      return { unique_id: k, label: S.label(k), change, points };
    });
    exposed.contributions = rows;
    const maxAbs = Math.max(1e-12, ...rows.map((r) => Math.abs(r.points || 0)));
    rows.forEach((r) => {
      const row = document.createElement("div"); row.className = "row";
      const name = document.createElement("span"); name.textContent = r.label; name.title = r.unique_id;
      const track = document.createElement("div"); track.className = "track";
      const fill = document.createElement("div"); fill.className = "fill" + ((r.points || 0) < 0 ? " neg" : "");
      const w = (50 * Math.abs(r.points || 0)) / maxAbs;
      fill.style.width = w + "%";
      fill.style.left = (r.points || 0) < 0 ? 50 - w + "%" : "50%";
      track.appendChild(fill); row.appendChild(name); row.appendChild(track); box.appendChild(row);
    });
    S.fill(tb, rows.map((r) => [r.label, S.eur(r.change), r.points === null ? "—" : S.points(r.points)]));
  }

  function wire() {
    $("lang-toggle").addEventListener("click", () => { state.lang = state.lang === "fr" ? "en" : "fr"; applyLabels(); });
    $("search").addEventListener("input", filterPicker);
    $("search").addEventListener("keydown", pickerKeys);
    $("picker").addEventListener("keydown", pickerKeys);
    $("picker").addEventListener("focus", () => { if (state.active < 0) setActive(0); });
    document.querySelectorAll("#view-toggle button").forEach((b) => b.addEventListener("click", () => navigate(state.current, b.dataset.view)));
    $("indicator").addEventListener("change", G.render);
    $("growth-form").addEventListener("submit", (ev) => ev.preventDefault());
    $("year").addEventListener("change", refreshAnnual);
    let timer = null;
    const later = () => { clearTimeout(timer); timer = setTimeout(refreshAnnual, 250); };
    $("budget").addEventListener("input", later);
    $("target").addEventListener("input", later);
    $("annual-form").addEventListener("submit", (ev) => { ev.preventDefault(); refreshAnnual(); });
    window.addEventListener("popstate", () => {
      const u = fromUrl();
      showView(u.view);
      if (u.uid !== state.current) choose(u.uid);
    });
  }

  async function start() {
    wire();
    applyLabels();
    try {
      const [model, list] = await Promise.all([S.api("/v1/model"), S.api("/v1/series")]);
      state.model = model;
      const fan = model.levels.filter((l) => FAN_LEVELS.includes(l));
      state.fanLevels = fan.length ? fan : model.levels.slice();
      $("run-id").textContent = model.run_id || "—";
      $("model-info").title = `${model.name || ""} v${model.version || "?"} (${model.alias || ""})`;
      state.series = list.series;
      state.byId = new Map(list.series.map((s) => [s.unique_id, s]));
      renderPicker();
      setActive(0);
      exposed.loaded = true;
      const u = fromUrl();
      if (u.asked && u.asked !== u.uid) S.showError(`${u.asked}: ${t("UNKNOWN_SERIES")}`);
      window.history.replaceState({ uid: u.uid, view: u.view }, "", urlFor(u.uid, u.view));
      showView(u.view);
      await choose(u.uid);
    } catch (err) { S.showError(err); }
  }

  start();
})();
