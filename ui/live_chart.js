// The Train page's live loss chart: one <canvas>, redrawn in place when new points arrive.
// Plotly rebuilds its whole SVG (axes, ticks, legend, text) on every update; at five updates a
// second that cost the learner's browser about 75 ms of CPU each time. A canvas redraw costs ~1 ms.
// Data (from ui/live_chart.py): {chart: {total, steps, raw, smooth, accSteps, acc, fullSteps, full, lr, lrStart,
// spike}, ...}. The learner picks the loss axis (auto: log when `spike`) and TensorBoard's smoothing weight
// above the canvas; both are kept in localStorage, so every run and page visit draws the same way.
// height, feed, mode, progress, strings. With a feed (mnist_core/feed.py) the chart follows a running job by itself:
// it fetches the job's feed file every `poll` seconds, repaints, shows the progress line, and asks the page
// to redraw (a "mode" trigger) only when the feed's mode is not the one the page was drawn for.

const BLUE = "#1f77b4";
const ORANGE = "#ff7f0e";
const GREEN = "#2ca02c";
const RED = "#ff2b2b"; // test accuracy: the colour Streamlit's Plotly theme gives it on the finished chart
const charts = new WeakMap(); // parentElement -> {canvas, tip, data, observer}
const DEFAULT_SMOOTHING = 0.9; // the weight of data.smooth, smoothed over every batch by the server
const SETTINGS_KEY = "mnist.liveChart";
// The chart's words: data.strings, in the visitor's language (ui/live_chart.py, chart_strings); these English ones
// only for a page that sends none (benchmarks/bench_live_chart.py draws the chart alone).
const ENGLISH = {
  stepAxis: "step (batch)",
  lossAxis: "cross-entropy loss",
  lossAxisLog: "cross-entropy loss (log scale)",
  accuracy: "test accuracy",
  lr: "lr {lr}",
  clipped: "▲ some batches are off the top (highest {value})",
  batchLoss: "batch loss",
  smoothed: "smoothed",
  full: "loss on whole train set",
  tipStep: "step {step}",
  tipBatchLoss: "batch loss {value}",
  tipSmoothed: "smoothed {value}",
  tipAccuracy: "test accuracy {accuracy}% (step {step})",
  scale: "Loss axis",
  scaleAuto: "auto (log on a spike)",
  scaleLinear: "linear",
  scaleLog: "log",
  smoothing: "Smoothing",
  chart: "live loss chart",
};

// A message with its {name}s filled in: a translation may put them in another order.
function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function loadSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
    const scale = ["auto", "linear", "log"].includes(saved.scale) ? saved.scale : "auto";
    const smoothing = Number.isFinite(saved.smoothing) ? Math.min(Math.max(saved.smoothing, 0), 0.99) : DEFAULT_SMOOTHING;
    return { scale, smoothing };
  } catch (e) {
    return { scale: "auto", smoothing: DEFAULT_SMOOTHING };
  }
}

function saveSettings(settings) {
  try { localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings)); } catch (e) { /* private mode: not kept */ }
}

// TensorBoard's debiased moving average over the points drawn, each weighted by the steps between them (the
// points are thinned), of the logs on a log axis: a plain average trails a spike for hundreds of steps.
function smoothed(steps, values, weight, log) {
  const out = new Array(values.length);
  let num = 0, den = 0, last = null;
  for (let i = 0; i < values.length; i++) {
    const v = log ? Math.log(values[i]) : values[i];
    if (!Number.isFinite(v)) { out[i] = NaN; continue; }
    const w = Math.pow(weight, last === null ? 1 : steps[i] - last);
    num = w * num + v; den = w * den + 1; last = steps[i];
    out[i] = log ? Math.exp(num / den) : num / den;
  }
  return out;
}

function niceStep(span, ticks) {
  const raw = span / Math.max(ticks, 1);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 10000) return (v / 1000).toFixed(0) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return +v.toFixed(2) + "";
  return +v.toPrecision(2) + "";
}

function layout(chart) {
  const { data, settings } = chart;
  const width = chart.look.width;
  const height = data.height;
  const box = { left: 56, right: width - 52, top: 34, bottom: height - 38 };
  const total = Math.max(data.total, 1);
  const x = (s) => box.left + ((box.right - box.left) * s) / total;
  const y2 = (v) => box.bottom - (box.bottom - box.top) * v;
  const log = settings.scale === "log" || (settings.scale === "auto" && !!data.spike);
  const values = [...data.raw, ...data.full].filter((v) => Number.isFinite(v));
  const rawMax = values.reduce((m, v) => (v > m ? v : m), 0);
  if (log) {
    // whole powers of ten from below the smallest loss to above the largest: a spike of 600,000 and a loss of
    // 0.01 both stay readable
    const positive = values.filter((v) => v > 0);
    let lo = positive.length ? Math.floor(Math.log10(Math.min(...positive))) : -2;
    let hi = positive.length ? Math.ceil(Math.log10(rawMax)) : 1;
    if (hi <= lo) hi = lo + 1;
    const y = (v) => box.bottom - ((box.bottom - box.top) * (Math.log10(v) - lo)) / (hi - lo);
    const decade = Math.max(1, Math.ceil((hi - lo) / 8));
    const ticks = [];
    for (let k = lo; k <= hi; k += decade) ticks.push(Math.pow(10, k));
    return { width, height, box, total, x, y, y2, ticks, log, clipped: null };
  }
  const smoothMax = data.smoothLine.reduce((m, v) => (Number.isFinite(v) && v > m ? v : m), 0);
  // A few huge batches (a spike, a divergence) must not flatten the curve: the axis follows the
  // smoothed line and what is above it is drawn at the top edge, with its true maximum written there.
  let top = rawMax;
  if (rawMax > 3 * smoothMax && smoothMax > 0) top = smoothMax * 1.6;
  if (!(top > 0)) top = 2.5;
  const yStep = niceStep(top, 5);
  top = Math.ceil(top / yStep) * yStep;
  const y = (v) => box.bottom - ((box.bottom - box.top) * Math.min(v, top)) / top;
  const ticks = [];
  for (let v = 0; v <= top + 1e-9; v += yStep) ticks.push(v);
  return { width, height, box, total, x, y, y2, ticks, log, clipped: rawMax > top ? rawMax : null };
}

function line(ctx, xs, ys, x, y) {
  ctx.beginPath();
  let started = false;
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(ys[i])) { started = false; continue; }
    if (started) ctx.lineTo(x(xs[i]), y(ys[i]));
    else { ctx.moveTo(x(xs[i]), y(ys[i])); started = true; }
  }
  ctx.stroke();
}

// The canvas's width and text style, read from the page only when its size changes (ResizeObserver) or the
// page redraws the component: reading them on every repaint made the browser lay the page out again five
// times a second.
function measure(chart) {
  const style = getComputedStyle(chart.canvas);
  chart.look = { width: chart.canvas.clientWidth, text: style.color || "#31333f", font: style.fontFamily };
}

function draw(chart) {
  const { canvas, data, strings } = chart;
  if (!chart.look) measure(chart);
  const { text, font } = chart.look;
  const L = layout(chart);
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(L.width * ratio) || canvas.height !== Math.round(L.height * ratio)) {
    canvas.width = Math.round(L.width * ratio);
    canvas.height = Math.round(L.height * ratio);
  }
  const cssHeight = L.height + "px";
  if (canvas.style.height !== cssHeight) canvas.style.height = cssHeight;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, L.width, L.height);
  ctx.font = `12px ${font}`;
  ctx.lineJoin = "round";
  const { box } = L;

  // grid and axes
  ctx.strokeStyle = "rgba(128,128,128,0.18)";
  ctx.lineWidth = 1;
  ctx.fillStyle = text;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of L.ticks) {
    ctx.beginPath(); ctx.moveTo(box.left, L.y(v)); ctx.lineTo(box.right, L.y(v)); ctx.stroke();
    ctx.fillText(fmt(v), box.left - 6, L.y(v));
  }
  ctx.textAlign = "left";
  for (let v = 0; v <= 1.0001; v += 0.2) ctx.fillText(Math.round(v * 100) + "%", box.right + 6, L.y2(v));
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xStep = niceStep(L.total, Math.max(2, Math.floor((box.right - box.left) / 90)));
  for (let s = 0; s <= L.total; s += xStep) ctx.fillText(fmt(s), L.x(s), box.bottom + 5);
  ctx.fillText(strings.stepAxis, (box.left + box.right) / 2, box.bottom + 20);
  ctx.save();
  ctx.translate(14, (box.top + box.bottom) / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle"; ctx.fillText(L.log ? strings.lossAxisLog : strings.lossAxis, 0, 0);
  ctx.restore();
  ctx.save();
  ctx.translate(L.width - 10, (box.top + box.bottom) / 2); ctx.rotate(Math.PI / 2);
  ctx.textBaseline = "middle"; ctx.fillText(strings.accuracy, 0, 0);
  ctx.restore();

  // learning-rate changes: dashed lines with the new value on top; the newest labels first, and a label that
  // would overlap one already written is left out (its line stays, the hover says its value)
  ctx.setLineDash([5, 4]);
  ctx.strokeStyle = ORANGE; ctx.fillStyle = ORANGE; ctx.lineWidth = 1.5;
  ctx.textBaseline = "bottom";
  let free = L.width; // labels must end left of this
  for (let i = data.lr.length - 1; i >= 0; i--) {
    const [step, lr] = data.lr[i];
    ctx.beginPath(); ctx.moveTo(L.x(step), box.top); ctx.lineTo(L.x(step), box.bottom); ctx.stroke();
    const label = fill(strings.lr, { lr });
    const half = ctx.measureText(label).width / 2;
    const at = Math.min(L.x(step), L.width - half);
    if (at + half + 4 <= free) {
      ctx.fillText(label, at, box.top - 2);
      free = at - half;
    }
  }
  ctx.setLineDash([]);

  // the curves: every batch (faint), smoothed (bold), whole-train-set loss, test accuracy (dotted)
  ctx.save();
  ctx.beginPath(); ctx.rect(box.left, box.top - 1, box.right - box.left, box.bottom - box.top + 2); ctx.clip();
  ctx.strokeStyle = BLUE; ctx.globalAlpha = 0.35; ctx.lineWidth = 1;
  line(ctx, data.steps, data.raw, L.x, L.y);
  ctx.globalAlpha = 1; ctx.lineWidth = 2.5;
  line(ctx, data.steps, data.smoothLine, L.x, L.y);
  if (data.full.length) {
    ctx.strokeStyle = GREEN; ctx.lineWidth = 1.5;
    line(ctx, data.fullSteps, data.full, L.x, L.y);
  }
  ctx.restore();
  if (data.acc.length) {
    ctx.strokeStyle = RED; ctx.fillStyle = RED; ctx.lineWidth = 1.5; ctx.setLineDash([2, 3]);
    line(ctx, data.accSteps, data.acc, L.x, L.y2);
    ctx.setLineDash([]);
    for (let i = 0; i < data.acc.length; i++) {
      ctx.beginPath(); ctx.arc(L.x(data.accSteps[i]), L.y2(data.acc[i]), 3.5, 0, 2 * Math.PI); ctx.fill();
    }
  }
  if (L.clipped !== null) {
    ctx.fillStyle = "#d62728"; ctx.textAlign = "left"; ctx.textBaseline = "top";
    ctx.fillText(fill(strings.clipped, { value: fmt(L.clipped) }), box.left + 6, box.top + 2);
  }

  // legend
  const items = [[strings.batchLoss, BLUE, 0.35], [strings.smoothed, BLUE, 1]];
  if (data.full.length) items.push([strings.full, GREEN, 1]);
  if (data.acc.length) items.push([strings.accuracy, RED, 1]);
  ctx.textAlign = "left"; ctx.textBaseline = "middle";
  let lx = box.left;
  for (const [name, colour, alpha] of items) {
    ctx.strokeStyle = colour; ctx.globalAlpha = alpha; ctx.lineWidth = 2.5;
    ctx.beginPath(); ctx.moveTo(lx, 10); ctx.lineTo(lx + 20, 10); ctx.stroke();
    ctx.globalAlpha = 1; ctx.fillStyle = text;
    ctx.fillText(name, lx + 25, 10);
    lx += 35 + ctx.measureText(name).width;
  }
  chart.L = L;
}

function showTip(chart, event) {
  const { canvas, tip, data, L, strings } = chart;
  if (!L || !data.steps.length) return;
  const rect = canvas.getBoundingClientRect();
  const px = event.clientX - rect.left;
  if (px < L.box.left || px > L.box.right) { tip.style.display = "none"; return; }
  const step = ((px - L.box.left) / (L.box.right - L.box.left)) * L.total;
  let i = 0;
  while (i < data.steps.length - 1 && data.steps[i + 1] <= step) i++;
  let lr = data.lrStart;
  for (const [at, value] of data.lr) if (at < data.steps[i]) lr = value; // a change at step s applies from s + 1
  let lines = [
    fill(strings.tipStep, { step: data.steps[i] }),
    fill(strings.tipBatchLoss, { value: fmt(data.raw[i]) }),
    fill(strings.tipSmoothed, { value: fmt(data.smoothLine[i]) }),
  ];
  if (lr !== null && lr !== undefined) lines.push(fill(strings.lr, { lr }));
  let j = -1;
  for (let k = 0; k < data.accSteps.length; k++) if (data.accSteps[k] <= step) j = k;
  if (j >= 0) {
    lines.push(fill(strings.tipAccuracy, { accuracy: (100 * data.acc[j]).toFixed(2), step: data.accSteps[j] }));
  }
  tip.textContent = lines.join("\n");
  tip.style.display = "block";
  tip.style.left = Math.min(px + 12, L.width - 190) + "px";
  tip.style.top = "40px";
}

// The smoothed line for the learner's weight and axis: the server's own for the default weight on a linear axis.
function restyle(chart) {
  const { data, settings } = chart;
  const log = settings.scale === "log" || (settings.scale === "auto" && !!data.spike);
  data.smoothLine = settings.smoothing === DEFAULT_SMOOTHING && !log
    ? data.smooth : smoothed(data.steps, data.raw, settings.smoothing, log);
}

function set(target, name, value) {
  if (target[name] !== value) target[name] = value;
}

function show(chart, curves, progress, notes, warning) {
  chart.data = { ...curves, height: chart.height };
  chart.curves = curves;
  chart.shown = { progress, notes, warning };
  restyle(chart);
  // what the browser tests read
  const { dataset } = chart.canvas;
  set(dataset, "points", String(curves.steps.length));
  set(dataset, "lastStep", String(curves.steps.length ? curves.steps[curves.steps.length - 1] : 0));
  set(dataset, "markers", String(curves.lr.length));
  // the lines above the canvas: shown only while the chart follows a feed (else the page writes them);
  // each written only when it changes, and into the text node it already has (a new node for every new
  // text, five times a second, was garbage for the page's collector), so an unchanged line costs nothing
  const share = progress && progress[0] !== null;
  set(chart.progress.style, "display", progress ? "block" : "none");
  set(chart.track.style, "display", share ? "block" : "none");
  set(chart.bar.style, "width", share ? (100 * progress[0]).toFixed(1) + "%" : "0px");
  set(chart.words.text, "data", progress ? progress[1] : "");
  set(chart.words.notes, "data", (notes || []).join("\n"));
  set(chart.words.warning, "data", warning || "");
  set(chart.warning.style, "display", warning ? "block" : "none");
  draw(chart);
  set(dataset, "scale", chart.L.log ? "log" : "linear");
  set(dataset, "smoothing", String(chart.settings.smoothing));
}

async function poll(chart) {
  if (chart.fetching || !chart.feed) return;
  chart.fetching = true;
  const url = chart.feed;
  const abort = new AbortController();
  const timeout = setTimeout(() => abort.abort(), 3000); // a fetch that hangs must not stop the polling
  try {
    const response = await fetch(url, { cache: "no-store", signal: abort.signal });
    chart.failures = response.ok ? 0 : (chart.failures || 0) + 1;
    if (response.ok) {
      const feed = await response.json();
      if (chart.feed !== url) return; // the page has redrawn meanwhile (paused, ended): it shows the newer state
      // A training job's feed that stops changing (it can no longer be written): redraw from the server.
      const seen = Date.now();
      if (feed.seq !== chart.seq) [chart.seq, chart.seqAt] = [feed.seq, seen];
      else if (feed.state === "running" && !feed.paused && seen - chart.seqAt > 10000) { // a paused feed rests
        chart.seqAt = seen;
        chart.setTriggerValue("mode", `stale#${feed.seq}`);
      }
      if (feed.chart) show(chart, feed.chart, feed.progress, feed.notes, feed.warning);
      if (feed.outcome) { // how it ended, at once: the page's own redraw follows
        chart.outcome.className = `outcome ${feed.outcome[0]}`;
        chart.outcome.textContent = feed.outcome[1];
        chart.outcome.style.display = "block";
      }
      else if (feed.progress) set(chart.words.text, "data", feed.progress[1]); // a place in line
      // the digit panel (ui/digit_view.js) follows the same feed: one fetch for both
      window.dispatchEvent(new CustomEvent("mnist:feed", { detail: { url, feed } }));
      // The page is drawn for another mode: ask it to redraw (each render sends the mode it was drawn for),
      // and ask again if nothing came of it in 10 s.
      const now = Date.now();
      if (feed.mode !== chart.mode && (feed.mode !== chart.asked || now - chart.askedAt > 10000)) {
        chart.asked = feed.mode;
        chart.askedAt = now;
        chart.asks = (chart.asks || 0) + 1;
        chart.setTriggerValue("mode", `${feed.mode}#${chart.asks}`);
      }
    }
  } catch (e) {
    chart.failures = (chart.failures || 0) + 1; // a fetch that hung, or a server going away
  } finally {
    // A feed that cannot be read for a while (its file could not be written): the page redraws itself
    // from the server every 10 failed fetches instead, so it still reaches the run's end.
    if (chart.failures && chart.failures % 10 === 0) chart.setTriggerValue("mode", `unread#${chart.failures}`);
    clearTimeout(timeout);
    chart.fetching = false;
  }
}

// The learner's two choices above the canvas: the loss axis and the smoothing weight (TensorBoard's slider).
// Their words are written by `relabel`, at every render from the page (the visitor may change the language).
function toolbar(settings, changed) {
  const tools = document.createElement("div");
  tools.className = "tools";
  const scale = document.createElement("select");
  for (const value of ["auto", "linear", "log"]) {
    const option = new Option("", value, false, value === settings.scale);
    scale.append(option);
  }
  scale.addEventListener("change", () => { settings.scale = scale.value; changed(); });
  const weight = document.createElement("input");
  Object.assign(weight, { type: "range", min: "0", max: "0.99", step: "0.01", value: String(settings.smoothing) });
  const shown = document.createElement("output");
  shown.textContent = settings.smoothing.toFixed(2);
  weight.addEventListener("input", () => {
    settings.smoothing = Number(weight.value);
    shown.textContent = settings.smoothing.toFixed(2);
    changed();
  });
  const words = { scale: new Text(""), smoothing: new Text("") };
  const label = (text, ...children) => {
    const element = document.createElement("label");
    element.append(text, ...children);
    return element;
  };
  tools.append(label(words.scale, scale), label(words.smoothing, weight, shown));
  return { tools, scale, weight, words };
}

// The toolbar's and the canvas's words in the language of the page's latest render.
function relabel(chart) {
  const { strings, toolbar: tools } = chart;
  set(tools.words.scale, "data", strings.scale + " ");
  set(tools.words.smoothing, "data", strings.smoothing + " ");
  const named = (element, name) => {
    if (element.getAttribute("aria-label") !== name) element.setAttribute("aria-label", name);
  };
  named(tools.scale, strings.scale);
  named(tools.weight, strings.smoothing);
  named(chart.canvas, strings.chart);
  const names = { auto: strings.scaleAuto, linear: strings.scaleLinear, log: strings.scaleLog };
  for (const option of tools.scale.options) set(option, "text", names[option.value]);
}

export default function ({ parentElement, data, setTriggerValue }) {
  let chart = charts.get(parentElement);
  if (!chart) {
    const div = (className, ...children) => {
      const element = document.createElement("div");
      element.className = className;
      element.append(...children);
      return element;
    };
    const [text, bar, notes, warning, outcome, tip] = ["text", "bar", "notes", "warning", "outcome", "tip"].map(
      (name) => div(name));
    const words = { text: new Text(""), notes: new Text(""), warning: new Text("") }; // the lines' texts
    text.append(words.text);
    notes.append(words.notes);
    warning.append(words.warning);
    const track = div("track", bar);
    const progress = div("progress", text, track, notes, warning);
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    const settings = loadSettings();
    const tools = toolbar(settings, () => {
      saveSettings(settings);
      if (chart.curves) show(chart, chart.curves, chart.shown.progress, chart.shown.notes, chart.shown.warning);
    });
    parentElement.appendChild(div("live-chart", outcome, progress, tools.tools, canvas, tip));
    chart = {
      canvas, tip, progress, track, bar, words, warning, outcome, settings, toolbar: tools, timer: null, feed: null,
    };
    chart.observer = new ResizeObserver(() => {
      measure(chart);
      draw(chart);
    });
    chart.observer.observe(canvas);
    canvas.addEventListener("mousemove", (e) => showTip(chart, e));
    canvas.addEventListener("mouseleave", () => (tip.style.display = "none"));
    charts.set(parentElement, chart);
  }
  measure(chart); // once per render from the page: a theme change shows at the page's next redraw
  chart.strings = { ...ENGLISH, ...(data.strings || {}) };
  relabel(chart);
  chart.height = data.height;
  chart.mode = data.mode;
  chart.outcome.style.display = "none"; // the page draws a run's end itself
  chart.setTriggerValue = setTriggerValue;
  if (chart.feed !== data.feed || chart.poll !== data.poll) {
    clearInterval(chart.timer);
    chart.timer = null;
    chart.feed = data.feed;
    chart.poll = data.poll;
    chart.asked = null;
    if (data.feed) chart.timer = setInterval(() => poll(chart), 1000 * data.poll);
  }
  show(chart, data.chart, data.progress, data.notes, data.warning);
  return () => {
    clearInterval(chart.timer);
    chart.observer.disconnect();
    chart.canvas.parentElement.remove();
    charts.delete(parentElement);
  };
}
