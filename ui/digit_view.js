// One digit inside the network: the digit, every conv layer's feature maps and the 10 probabilities, drawn
// on one canvas from small arrays (bytes, base64) and repainted in place a few times a second while it trains.
// Data (from ui/digit_view.py): {digit, label, classes, step, layers: [{name, c, h, w, data}], probs, strings}:
// strings are the canvas's words in the visitor's language, with {name}s to fill in.

const BLUE = "#1f77b4";
const GREEN = "#2ca02c";
const RED = "#d62728";
const views = new WeakMap(); // parentElement -> {canvas}

// A message with its {name}s filled in: a translation may put them in another order.
function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// Greyscale (h, w) blocks of bytes (base64, as sent), `count` of them one after another, each drawn as an image
// `scale` times its pixels. All blocks go through one scratch canvas per view and one ImageData per size, both
// reused, and the pixels are read straight from the decoded string: a canvas and a context per feature map
// cost the browser a GPU-channel handshake each, 80 times per repaint, and fresh byte arrays and images on
// every repaint made the page's garbage collector run a full collection every few seconds while it trains.
function blocks(view, ctx, b64, count, h, w, place) {
  const scratch = view.scratch || (view.scratch = document.createElement("canvas"));
  if (scratch.width < w * count || scratch.height < h) {
    scratch.width = Math.max(scratch.width, w * count);
    scratch.height = Math.max(scratch.height, h);
    view.scratchContext = null;
  }
  const sctx = view.scratchContext || (view.scratchContext = scratch.getContext("2d", { willReadFrequently: true }));
  const images = view.images || (view.images = new Map());
  const key = `${w * count}x${h}`;
  let buffer = images.get(key);
  if (!buffer) {
    const image = sctx.createImageData(w * count, h);
    buffer = { image, rgba: new Uint32Array(image.data.buffer) }; // little-endian: 0xAABBGGRR
    images.set(key, buffer);
  }
  const { image, rgba } = buffer;
  const raw = atob(b64);
  for (let c = 0; c < count; c++) {
    for (let r = 0; r < h; r++) {
      for (let k = 0; k < w; k++) {
        const v = raw.charCodeAt(c * h * w + r * w + k);
        rgba[r * w * count + c * w + k] = 0xff000000 | (v << 16) | (v << 8) | v;
      }
    }
  }
  sctx.putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  for (let c = 0; c < count; c++) {
    const [x, y, size] = place(c);
    ctx.drawImage(scratch, c * w, 0, w, h, x, y, size, size * (h / w));
  }
}

// Each map is drawn at a whole multiple of its pixels: 14x14 at 3x, 7x7 at 5x, 4x4 at 6x, 2x2 at 8x.
function scaleOf(w) {
  return w >= 14 ? 3 : w >= 7 ? 5 : w >= 4 ? 6 : 8;
}

// The canvas's width and text style, read only when its size changes or the page redraws it (as in
// live_chart.js).
function measure(view) {
  const style = getComputedStyle(view.canvas);
  view.look = { width: view.canvas.clientWidth, text: style.color || "#31333f", font: style.fontFamily };
}

function draw(view) {
  const { canvas, data } = view;
  const { strings } = data;
  if (!view.look) measure(view);
  const { text, font, width } = view.look;
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
  if (canvas.style.height !== height + "px") canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = `12px ${font}`;
  ctx.fillStyle = text;
  ctx.textBaseline = "top";

  // the digit itself, 84 px, and the step it is seen at
  blocks(view, ctx, data.digit, 1, 28, 28, () => [0, 18, 84]);
  ctx.fillText(data.label === null ? strings.drawn : fill(strings.test, { digit: data.classes[data.label] }), 0, 0);
  ctx.fillText(fill(strings.step, { step: data.step }), 90, 18);

  // the probabilities: one bar per class, the model's answer in green (red when wrong), the true class bold
  const best = data.probs.indexOf(Math.max(...data.probs));
  ctx.fillText(strings.probabilities, 0, probsTop);
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
    const index = /^conv (\d+)$/.exec(layer.name); // a machine name: "conv 2"
    const shown = index && strings.conv ? fill(strings.conv, { index: index[1] }) : layer.name;
    ctx.fillText(fill(strings.maps, { layer: shown, count: layer.c, h: layer.h, w: layer.w }), left, y);
    y += 18;
    const top = y;
    blocks(view, ctx, layer.data, layer.c, layer.h, layer.w, (c) => [
      left + (c % perRow) * (cell + gap), top + Math.floor(c / perRow) * (cell + gap), cell]);
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
    root.append(canvas);
    parentElement.appendChild(root);
    view = { canvas, data };
    view.observer = new ResizeObserver(() => {
      measure(view);
      draw(view);
    });
    view.observer.observe(canvas);
    // A newer view of the digit from the job's live feed, fetched by the live chart (ui/live_chart.js).
    view.onFeed = (event) => {
      const { url, feed } = event.detail;
      if (url === view.data.feed && feed.watch && feed.watch.step > view.data.step) show(view, { ...view.data, ...feed.watch });
    };
    window.addEventListener("mnist:feed", view.onFeed);
    views.set(parentElement, view);
  }
  measure(view); // once per render from the page: a theme change shows at the page's next redraw
  const name = data.strings.canvas; // the canvas's name for a screen reader, in the page's language
  if (view.canvas.getAttribute("aria-label") !== name) view.canvas.setAttribute("aria-label", name);
  show(view, data);
  return () => {
    window.removeEventListener("mnist:feed", view.onFeed);
    view.observer.disconnect();
    view.canvas.parentElement.remove();
    views.delete(parentElement);
  };
}
