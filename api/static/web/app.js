/* tsengine pages: draw the server's chart data with uPlot, keep downloads local.
 *
 * Every chart's data is JSON in a <script type="application/json"> next to it,
 * written by api/web/views.py; this file only aligns and draws it.  Charts are
 * kept in window.tsengineCharts (by element id) and describe themselves in
 * data-* attributes (series count, bands, events), which the browser tests read.
 */
(function () {
  "use strict";

  const charts = (window.tsengineCharts = {});
  const numberFormat = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 5 });
  const num = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : numberFormat.format(v));
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = () => [css("--accent"), css("--c2"), css("--c3"), css("--c4"), css("--c5"), css("--c6")];

  function readJSON(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function size(el) {
    const width = Math.max(280, Math.floor((el.parentElement || el).clientWidth));
    return { width, height: window.innerWidth < 640 ? 240 : 340 };
  }

  function axes() {
    const stroke = css("--fg");
    const grid = { stroke: css("--grid"), width: 1 };
    return [
      { stroke, grid, ticks: grid },
      { stroke, grid, ticks: grid, size: 60, values: (u, vals) => vals.map(num) },
    ];
  }

  /* Union of the x values of several (x, y) pairs, and each y on it (null where absent). */
  function align(pairs) {
    const xs = Array.from(new Set(pairs.flatMap((p) => p[0]))).sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const ys = pairs.map(([px, py]) => {
      const out = new Array(xs.length).fill(null);
      px.forEach((x, i) => { out[at.get(x)] = py[i] ?? null; });
      return out;
    });
    return [xs, ...ys];
  }

  function mount(el, opts, data) {
    if (charts[el.id]) charts[el.id].destroy();
    el.textContent = "";
    const u = new uPlot({ ...size(el), axes: axes(), ...opts }, data, el);
    charts[el.id] = u;
    el.dataset.seriesCount = String(u.series.length - 1);
    el.dataset.bands = String((opts.bands || []).length);
    el.dataset.ready = "true";
    return u;
  }

  function fillSelect(select, values, labels) {
    if (!select || select.options.length) return;
    values.forEach((value, i) => select.add(new Option(labels ? labels[i] : String(value), String(value))));
  }

  /* Vertical dashed lines at event timestamps (known-in-advance flags such as holidays). */
  function eventLines(xs) {
    return (u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = css("--event");
      ctx.setLineDash([4, 4]);
      ctx.lineWidth = 1;
      for (const x of xs) {
        const px = Math.round(u.valToPos(x, "x", true));
        if (px < u.bbox.left || px > u.bbox.left + u.bbox.width) continue;
        ctx.beginPath();
        ctx.moveTo(px, u.bbox.top);
        ctx.lineTo(px, u.bbox.top + u.bbox.height);
        ctx.stroke();
      }
      ctx.restore();
    };
  }

  // ---------------------------------------------------------------- forecast

  function forecastChart(el, payload) {
    const select = document.getElementById("forecast-series");
    const distanceSelect = document.getElementById("forecast-distance");
    fillSelect(select, payload.series.map((s) => s.id), payload.series.map((s) => s.id || "(single series)"));
    if (distanceSelect) {
      const ds = Array.from(new Set(payload.series.flatMap((s) => s.d))).sort((a, b) => a - b);
      fillSelect(distanceSelect, ds);
    }
    const draw = () => {
      const s = payload.series[select ? select.selectedIndex : 0] || payload.series[0];
      if (!s) return;
      let keep = s.x.map((_, i) => i);
      if (distanceSelect) {
        const d = Number(distanceSelect.value);
        keep = keep.filter((i) => s.d[i] === d);
      }
      const pick = (arr) => (arr ? keep.map((i) => arr[i]) : null);
      const fx = pick(s.x);
      const pairs = [[s.hx || [], s.hy || []], [fx, pick(s.p)]];
      if (payload.intervals) pairs.push([fx, pick(s.lo)], [fx, pick(s.hi)]);
      const data = align(pairs);
      const labels = new Map();
      (s.hx || []).forEach((x, i) => labels.set(x, s.hl[i]));
      fx.forEach((x, i) => labels.set(x, s.ts[keep[i]]));
      const series = [
        { label: "time", value: (u, v) => (v === null ? "–" : labels.get(v) || new Date(v * 1000).toISOString()) },
        { label: `${payload.target} (actual)`, stroke: css("--fg"), width: 1.5, value: (u, v) => num(v) },
        { label: "forecast", stroke: css("--accent"), width: 2.5, value: (u, v) => num(v) },
      ];
      const opts = { series };
      if (payload.intervals) {
        const pct = payload.percentile ? `${payload.percentile} % ` : "";
        series.push(
          { label: `${pct}low`, stroke: css("--band-line"), width: 1, dash: [3, 3], value: (u, v) => num(v) },
          { label: `${pct}high`, stroke: css("--band-line"), width: 1, dash: [3, 3], value: (u, v) => num(v) },
        );
        opts.bands = [{ series: [4, 3], fill: css("--band") }];
      }
      const events = s.ex || [];
      opts.hooks = { draw: [eventLines(events)] };
      mount(el, opts, data);
      el.dataset.points = String(fx.length);
      el.dataset.history = String((s.hx || []).length);
      el.dataset.events = String(events.length);
      el.dataset.series = s.id;
      const note = document.getElementById("events");
      if (note) {
        note.textContent = events.length
          ? "Known-in-advance events (dashed lines): " +
            events.map((x, i) => `${s.et[i]} on ${labels.get(x) || new Date(x * 1000).toISOString().slice(0, 10)}`).join("; ")
          : "";
      }
      forecastTable(s, keep, payload);
    };
    if (select) select.onchange = draw;
    if (distanceSelect) distanceSelect.onchange = draw;
    draw();
  }

  function forecastTable(s, keep, payload) {
    const table = document.getElementById("forecast-table");
    if (!table) return;
    const head = ["Timestamp", "Forecast point", "Distance", "Prediction"];
    if (payload.intervals) head.push("Low", "High");
    if (payload.explanations) head.push("Explanations");
    const rows = keep.map((i) => {
      const cells = [s.ts[i], s.fp[i], s.d[i], num(s.p[i])];
      if (payload.intervals) cells.push(num(s.lo[i]), num(s.hi[i]));
      if (payload.explanations) cells.push(s.xp ? s.xp[i] : "");
      return cells;
    });
    table.textContent = "";
    const thead = table.createTHead().insertRow();
    head.forEach((h) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; thead.appendChild(th); });
    const body = table.createTBody();
    for (const cells of rows) {
      const tr = body.insertRow();
      cells.forEach((c, k) => { const td = tr.insertCell(); td.textContent = String(c ?? ""); if (k >= 2 && k < head.length - (payload.explanations ? 1 : 0)) td.className = "n"; });
    }
  }

  // ---------------------------------------------------------------- deployment

  function backtestChart(el, payload) {
    const select = document.getElementById("backtest-series");
    fillSelect(select, payload.series.map((s) => s.id));
    const colors = palette();
    const draw = () => {
      const s = payload.series[select ? select.selectedIndex : 0];
      const pairs = [[s.ax, s.ay]];
      const series = [{ label: "time" }, { label: "actual", stroke: css("--fg"), width: 1.5, value: (u, v) => num(v) }];
      payload.origins.forEach((origin, k) => {
        const idx = s.o.map((o, i) => (o === k ? i : -1)).filter((i) => i >= 0);
        pairs.push([idx.map((i) => s.fx[i]), idx.map((i) => s.fy[i])]);
        series.push({ label: `from ${origin}`, stroke: colors[k % colors.length], width: 2, value: (u, v) => num(v) });
      });
      mount(el, { series }, align(pairs));
      el.dataset.series = s.id;
    };
    if (select) select.onchange = draw;
    draw();
  }

  function distanceChart(el, payload) {
    const colors = palette();
    const series = [{ label: "distance", value: (u, v) => (v === null ? "–" : String(v)) }];
    payload.lines.forEach((line, k) => {
      const chosen = line.label === payload.chosen;
      series.push({ label: line.label, stroke: colors[k % colors.length], width: chosen ? 3 : 1.2, value: (u, v) => num(v) });
    });
    const x = { time: false };
    mount(el, { series, scales: { x } }, [payload.x, ...payload.lines.map((l) => l.values)]);
  }

  function monitorChart(el, payload) {
    if (!payload.x.length) { el.dataset.ready = "true"; el.dataset.seriesCount = "0"; return; }
    const series = [
      { label: "bucket" },
      { label: payload.metric, stroke: css("--accent"), width: 2, points: { show: true }, value: (u, v) => num(v) },
    ];
    mount(el, { series }, [payload.x, payload.y]);
  }

  const kinds = { forecast: forecastChart, backtest: backtestChart, distance: distanceChart, monitor: monitorChart };

  function downloads(root) {
    root.querySelectorAll("a[data-csv]").forEach((a) => {
      const bytes = Uint8Array.from(atob(a.dataset.csv), (c) => c.charCodeAt(0));
      a.href = URL.createObjectURL(new Blob([bytes], { type: "text/csv" }));
    });
  }

  function init(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach((el) => {
      const draw = kinds[el.dataset.chart];
      const payload = readJSON(el.dataset.source);
      if (draw && payload) draw(el, payload);
    });
    downloads(root);
  }

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const [id, u] of Object.entries(charts)) {
        const el = document.getElementById(id);
        if (el) u.setSize(size(el));
      }
    }, 150);
  });
  document.addEventListener("DOMContentLoaded", () => init(document));
  document.addEventListener("htmx:afterSwap", (event) => init(event.detail.target || document));
})();
