// One digit inside the network: the digit, every conv layer's feature maps and the 10 probabilities, drawn
// on one canvas from small arrays (bytes, base64) and repainted in place a few times a second while it trains.
// Data (from ui/digit_view.py): {digit, label, classes, step, layers: [{name, c, h, w, data}], probs}.

const BLUE = "#1f77b4";
const GREEN = "#2ca02c";
const RED = "#d62728";
const views = new WeakMap(); // parentElement -> {canvas}

function bytes(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// A greyscale (h, w) block of bytes as an image, each pixel a scale x scale square.
function block(ctx, pixels, offset, h, w, x, y, scale) {
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = pixels[offset + i];
    image.data.set([v, v, v, 255], 4 * i);
  }
  const tmp = new OffscreenCanvas(w, h);
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, x, y, w * scale, h * scale);
}

// Each map is drawn at a whole multiple of its pixels: 14x14 at 3x, 7x7 at 5x, 4x4 at 6x, 2x2 at 8x.
function scaleOf(w) {
  return w >= 14 ? 3 : w >= 7 ? 5 : w >= 4 ? 6 : 8;
}

function draw(view) {
  const { canvas, data } = view;
  const style = getComputedStyle(canvas);
  const text = style.color || "#31333f";
  const font = style.fontFamily;
  const width = canvas.clientWidth;
  const gap = 3;
  const left = 180; // the digit, then the probabilities, in a column on the left
  const mapsWidth = Math.max(60, width - left);
  const rows = data.layers.map((l) => {
    const cell = l.w * scaleOf(l.w);
    const perRow = Math.max(1, Math.floor((mapsWidth + gap) / (cell + gap)));
    return { cell, perRow, lines: Math.ceil(l.c / perRow) };
  });
  const mapsHeight = rows.reduce((a, r) => a + 18 + r.lines * (r.cell + gap) + 6, 0);
  const probsTop = 18 + 84 + 22;
  const height = Math.max(mapsHeight, probsTop + 18 + 10 * 18);
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `12px ${font}`;
  ctx.fillStyle = text;
  ctx.textBaseline = "top";

  // the digit itself, 84 px, and the step it is seen at
  block(ctx, bytes(data.digit), 0, 28, 28, 0, 18, 3);
  ctx.fillText(data.label === null ? "your digit" : `a test ${data.classes[data.label]}`, 0, 0);
  ctx.fillText(`after step ${data.step}`, 90, 18);

  // the probabilities: one bar per class, the model's answer in green (red when wrong), the true class bold
  const best = data.probs.indexOf(Math.max(...data.probs));
  ctx.fillText("probabilities", 0, probsTop);
  for (let k = 0; k < data.probs.length; k++) {
    const by = probsTop + 18 + k * 18;
    ctx.fillStyle = text;
    ctx.font = `${k === data.label ? "bold " : ""}12px ${font}`;
    ctx.fillText(String(data.classes[k]).slice(0, 9), 0, by + 1);
    const barX = 62;
    const barW = left - 62 - 48;
    ctx.fillStyle = "rgba(128,128,128,0.15)";
    ctx.fillRect(barX, by, barW, 13);
    ctx.fillStyle = k === best ? (data.label === null || best === data.label ? GREEN : RED) : BLUE;
    ctx.fillRect(barX, by, Math.max(1, barW * data.probs[k]), 13);
    ctx.fillStyle = text;
    ctx.fillText(`${Math.round(100 * data.probs[k])}%`, barX + barW + 4, by + 1);
  }
  ctx.font = `12px ${font}`;

  // each conv layer's maps, a row (or more) per layer
  let y = 0;
  data.layers.forEach((layer, i) => {
    const { cell, perRow, lines } = rows[i];
    ctx.fillStyle = text;
    ctx.fillText(`${layer.name}: ${layer.c} maps of ${layer.h}x${layer.w}`, left, y);
    y += 18;
    const pixels = bytes(layer.data);
    for (let c = 0; c < layer.c; c++) {
      const x0 = left + (c % perRow) * (cell + gap);
      const y0 = y + Math.floor(c / perRow) * (cell + gap);
      block(ctx, pixels, c * layer.h * layer.w, layer.h, layer.w, x0, y0, cell / layer.w);
    }
    y += lines * (cell + gap) + 6;
  });
}

function show(view, data) {
  view.data = data;
  view.canvas.dataset.step = String(data.step); // what the browser tests read
  view.canvas.dataset.probs = data.probs.map((p) => p.toFixed(4)).join(",");
  draw(view);
}

export default function ({ parentElement, data }) {
  let view = views.get(parentElement);
  if (!view) {
    const root = document.createElement("div");
    root.className = "digit-view";
    const canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "one digit's feature maps and probabilities");
    root.append(canvas);
    parentElement.appendChild(root);
    view = { canvas, data };
    view.observer = new ResizeObserver(() => draw(view));
    view.observer.observe(canvas);
    // A newer view of the digit from the job's live feed, fetched by the live chart (ui/live_chart.js).
    view.onFeed = (event) => {
      const { url, feed } = event.detail;
      if (url === view.data.feed && feed.watch && feed.watch.step > view.data.step) show(view, { ...view.data, ...feed.watch });
    };
    window.addEventListener("mnist:feed", view.onFeed);
    views.set(parentElement, view);
  }
  show(view, data);
  return () => {
    window.removeEventListener("mnist:feed", view.onFeed);
    view.observer.disconnect();
    view.canvas.parentElement.remove();
    views.delete(parentElement);
  };
}
