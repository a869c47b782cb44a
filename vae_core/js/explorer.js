// The standalone explorer page (vae_core/export_html.py), after decode.mjs and project.mjs in one
// inline module: parseDecoder/decode/toRGBA, project/f32/i32/b64ToBytes/ticks are in scope.
// Data: the JSON block #vae-data (format in export_html.explorer_data). One z drives everything:
// the sliders, the decoded image (one decode per animation frame), the map's star, and, after a
// release or a button, the traversal grid. Test hook: window.__vaeExport.

const T0 = performance.now();
const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac"];  // Tableau-10, as the app's map
const D = JSON.parse(document.getElementById("vae-data").textContent);
const $ = (id) => document.getElementById(id);
const hook = (window.__vaeExport = { ready: false, readyMs: NaN, mapDrawn: 0, frames: 0, z: [], hovered: null,
                                     selected: null, traversalFrames: 0, decodeMs: [] });

const net = parseDecoder(D.decoder);
const P = D.points, K = P.k, N = P.n;
const pts = { xy: f32(P.xy), means: f32(P.means), index: i32(P.index), labels: i32(P.labels),
              elbo: f32(P.elbo), recon: f32(P.recon), kl: f32(P.kl), logpx: f32(P.log_px) };
const spec = D.projection.spec.kind === "knn"
  ? { ...D.projection.spec, means: pts.means, xy: pts.xy } : D.projection.spec;
const RANGE = D.sliders.range;
const z = new Float64Array(K);

// --- images -----------------------------------------------------------------------------------
const sprite = new Image();
const spriteReady = new Promise((resolve) => { sprite.onload = resolve; });
sprite.src = "data:image/png;base64," + D.sprite.png;

function drawSprite(canvas, row) {  // the test image of map point `row`
  const { cols, h, w } = D.sprite, r = Math.floor(row / cols), c = row % cols;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(sprite, c * (w + 1), r * (h + 1), w, h, 0, 0, w, h);
}

function decodeTo(canvas, zz) {  // E[x|z] on a canvas of the image's size
  canvas.width = net.W; canvas.height = net.H;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(net.W, net.H);
  toRGBA(net, decode(net, zz), img.data);
  ctx.putImageData(img, 0, 0);
}

// --- the map ----------------------------------------------------------------------------------
const map = $("map"), mctx = map.getContext("2d"), DPR = window.devicePixelRatio || 1;
const CSS = 560, PAD = 24;
map.width = CSS * DPR; map.height = CSS * DPR;
let bounds;
{
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < N; i++) {
    const x = pts.xy[2 * i], y = pts.xy[2 * i + 1];
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (D.projection.name === "latent") {  // the sliders' box is always in view on the latent plane
    x0 = Math.min(x0, -RANGE); x1 = Math.max(x1, RANGE); y0 = Math.min(y0, -RANGE); y1 = Math.max(y1, RANGE);
  }
  const s = Math.max(x1 - x0, y1 - y0) || 1, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  bounds = { x0: cx - s / 2, y0: cy - s / 2, s };
}
const toScreen = (x, y) => [PAD + ((x - bounds.x0) / bounds.s) * (CSS - 2 * PAD),
                            CSS - PAD - ((y - bounds.y0) / bounds.s) * (CSS - 2 * PAD)];
const screen = new Float32Array(2 * N);
for (let i = 0; i < N; i++) {
  const [sx, sy] = toScreen(pts.xy[2 * i], pts.xy[2 * i + 1]);
  screen[2 * i] = sx; screen[2 * i + 1] = sy;
}
let selected = null, hovered = null;

function drawMap() {
  const c = mctx;
  c.setTransform(DPR, 0, 0, DPR, 0, 0);
  c.clearRect(0, 0, CSS, CSS);
  c.strokeStyle = "#e6e8ed"; c.fillStyle = "#8a90a0"; c.font = "10px sans-serif";
  for (const t of ticks(bounds.x0, bounds.x0 + bounds.s)) {  // light grid with tick labels
    const [sx] = toScreen(t, 0), [, sy] = toScreen(0, t);
    c.beginPath(); c.moveTo(sx, PAD); c.lineTo(sx, CSS - PAD); c.stroke(); c.fillText(String(+t.toFixed(3)), sx + 2, CSS - 6);
    c.beginPath(); c.moveTo(PAD, sy); c.lineTo(CSS - PAD, sy); c.stroke(); c.fillText(String(+t.toFixed(3)), 2, sy - 2);
  }
  c.globalAlpha = 0.75;
  for (let i = 0; i < N; i++) {
    const l = pts.labels[i];
    c.fillStyle = l >= 0 ? COLORS[l % COLORS.length] : "#4e79a7";
    c.beginPath(); c.arc(screen[2 * i], screen[2 * i + 1], 2.6, 0, 2 * Math.PI); c.fill();
  }
  c.globalAlpha = 1;
  for (const [row, color] of [[hovered, "#1f2430"], [selected, "#e15759"]]) {
    if (row === null) continue;
    c.strokeStyle = color; c.lineWidth = 2;
    c.beginPath(); c.arc(screen[2 * row], screen[2 * row + 1], 6, 0, 2 * Math.PI); c.stroke();
    c.lineWidth = 1;
  }
  const [px, py] = project(spec, z), [sx, sy] = toScreen(px, py);  // the star: the current z
  c.fillStyle = "#ffd400"; c.strokeStyle = "#1f2430"; c.font = "22px sans-serif";
  c.textAlign = "center"; c.textBaseline = "middle";
  c.strokeText("★", sx, sy); c.fillText("★", sx, sy);
  c.textAlign = "start"; c.textBaseline = "alphabetic";
  hook.mapDrawn = N; hook.star = [sx, sy];
}

function nearest(mx, my, radius = 6) {
  let best = null, bd = radius * radius;
  for (let i = 0; i < N; i++) {
    const dx = screen[2 * i] - mx, dy = screen[2 * i + 1] - my, d = dx * dx + dy * dy;
    if (d <= bd) { bd = d; best = i; }
  }
  return best;
}

hook.pointXY = (row) => {  // viewport position of map point `row`, for tests
  const r = map.getBoundingClientRect();
  return [r.left + screen[2 * row], r.top + screen[2 * row + 1]];
};

const tip = $("tip");
map.addEventListener("mousemove", (e) => {
  const r = map.getBoundingClientRect(), row = nearest(e.clientX - r.left, e.clientY - r.top);
  if (row !== hovered) { hovered = row; hook.hovered = row === null ? null : pts.index[row]; scheduleMap(); }
  if (row === null) { tip.style.display = "none"; return; }
  drawSprite(tip.querySelector("canvas"), row);
  const l = pts.labels[row];
  tip.querySelector("div").textContent = `test #${pts.index[row]}` + (l >= 0 ? ` · label ${l}` : "");
  tip.style.left = `${e.clientX + 14}px`; tip.style.top = `${e.clientY + 14}px`;
  tip.style.display = "block";
});
map.addEventListener("mouseleave", () => { hovered = null; hook.hovered = null; tip.style.display = "none"; scheduleMap(); });
map.addEventListener("click", (e) => {
  const r = map.getBoundingClientRect(), row = nearest(e.clientX - r.left, e.clientY - r.top);
  if (row !== null) select(row);
});

// --- sliders and the decoded image --------------------------------------------------------------
const decoded = $("decoded"), dctx = decoded.getContext("2d");
decoded.width = net.W; decoded.height = net.H;
const dimg = dctx.createImageData(net.W, net.H);
const inputs = [], outputs = [];
D.sliders.labels.forEach((text, i) => {
  const row = document.createElement("div"), label = document.createElement("label");
  const input = document.createElement("input"), out = document.createElement("output");
  row.className = "row" + (D.sliders.collapsed[i] ? " inactive" : "");
  label.textContent = text; label.title = text;
  Object.assign(input, { type: "range", min: String(-RANGE), max: String(RANGE), step: String(D.sliders.step), value: "0" });
  input.dataset.testid = `export-slider-${i}`;
  input.setAttribute("aria-label", text);
  input.addEventListener("input", () => { z[i] = parseFloat(input.value); out.textContent = z[i].toFixed(2); changed(); });
  input.addEventListener("change", () => scheduleTraversal());
  row.append(label, input, out);
  $("sliders").append(row);
  inputs.push(input); outputs.push(out);
});

let raf = 0;
function changed() { if (!raf) raf = requestAnimationFrame(paint); }
function scheduleMap() { changed(); }
function paint() {
  raf = 0;
  const t0 = performance.now();
  toRGBA(net, decode(net, z), dimg.data);
  dctx.putImageData(dimg, 0, 0);
  const ms = performance.now() - t0;
  hook.decodeMs.push(ms);
  if (hook.decodeMs.length > 600) hook.decodeMs.shift();
  hook.frames++; hook.z = Array.from(z);
  drawMap();
  $("status").textContent = `decoded in your browser · ${ms.toFixed(1)} ms`;
}

function setZ(values) {  // a z from a button or a map click; sliders span ±RANGE, z is clipped to it
  for (let i = 0; i < K; i++) {
    z[i] = Math.max(-RANGE, Math.min(RANGE, Number(values[i]) || 0));
    inputs[i].value = String(z[i]); outputs[i].textContent = z[i].toFixed(2);
  }
  changed();
  scheduleTraversal();
}

function gaussian() {  // N(0, 1) by Box-Muller
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}
$("zero").addEventListener("click", () => setZ(new Array(K).fill(0)));
$("prior").addEventListener("click", () => setZ(Array.from({ length: K }, gaussian)));

// --- the selected point -------------------------------------------------------------------------
const fmt = (v) => (Number.isFinite(v) ? v.toFixed(2) : "n/a");
function select(row) {
  selected = row; hook.selected = pts.index[row];
  const mu = pts.means.subarray(row * K, (row + 1) * K);
  setZ(mu);
  drawSprite($("sel-x"), row);
  decodeTo($("sel-recon"), mu);
  const l = pts.labels[row];
  $("sel-table").innerHTML = "";
  for (const [key, name, v] of [["index", "test #", String(pts.index[row])], ["label", "label", l >= 0 ? String(l) : "none"],
                                ["elbo", "ELBO", fmt(pts.elbo[row])], ["recon", "recon: E_q log p(x|z)", fmt(pts.recon[row])],
                                ["kl", "KL(q(z|x) ‖ p(z))", fmt(pts.kl[row])],
                                ["log_px", `log p(x), K = ${D.iw_samples}`, fmt(pts.logpx[row])]]) {
    const tr = document.createElement("tr"), a = document.createElement("td"), b = document.createElement("td");
    a.textContent = name; b.textContent = v; b.dataset.stat = key;
    tr.append(a, b); $("sel-table").append(tr);
  }
}

// --- traversal grid: rows = dims (highest KL first), columns = values over the sliders' range ----
const trav = $("traversal"), tctx = trav.getContext("2d"), TR = D.traversal;
const tvals = Array.from({ length: TR.steps }, (_, j) => -RANGE + (2 * RANGE * j) / (TR.steps - 1));
trav.width = TR.steps * (net.W + 1) - 1; trav.height = TR.dims.length * (net.H + 1) - 1;
const scale = Math.max(1, Math.floor(520 / trav.width));
trav.style.width = `${trav.width * scale}px`; trav.style.height = `${trav.height * scale}px`;
$("traversal-caption").textContent = `rows: ${TR.dims.map((d) => `z${d + 1}`).join(", ")} · columns: ` +
  tvals.map((v) => v.toFixed(2)).join(", ");
let travJob = 0;
function scheduleTraversal() {  // one row per animation frame, so a drag right after stays smooth
  const job = ++travJob, base = Float64Array.from(z), timg = tctx.createImageData(net.W, net.H);
  let r = 0;
  const step = () => {
    if (job !== travJob || r >= TR.dims.length) { if (job === travJob) hook.traversalFrames++; return; }
    const zz = Float64Array.from(base);
    for (let j = 0; j < TR.steps; j++) {
      zz[TR.dims[r]] = tvals[j];
      toRGBA(net, decode(net, zz), timg.data);
      tctx.putImageData(timg, j * (net.W + 1), r * (net.H + 1));
    }
    r++;
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

// --- captions and start ---------------------------------------------------------------------------
const m = D.metrics;
$("caption").textContent = `${D.title} · test ELBO ${fmt(m.elbo)} nats` +
  (m.log_likelihood != null ? ` · log p(x) ${fmt(m.log_likelihood)}` : "") + ` · ${D.checkpoint}`;
$("map-title").textContent = D.projection.name === "latent" ? "Latent map: the latent plane itself"
  : `Latent map (${D.projection.name.toUpperCase()} of the encoder means)`;
$("map-caption").textContent = `${N.toLocaleString()} of ${D.n_test.toLocaleString()} test points · axes ` +
  `${D.projection.axes.join(" / ")} · ★ = current z · hover a point to see its image, click it to load its μ. ` +
  `Per point: ELBO = recon − KL in nats, log p(x) by importance sampling with K = ${D.iw_samples}.`;
const labelsSeen = [...new Set(pts.labels)].filter((l) => l >= 0).sort((a, b) => a - b);
for (const l of labelsSeen.slice(0, 20)) {
  const s = document.createElement("span"), i = document.createElement("i");
  i.style.background = COLORS[l % COLORS.length];
  s.append(i, String(l)); $("legend").append(s);
}
spriteReady.then(() => {
  select(0);  // as the Explorer: start on the first map point
  paint();
  hook.ready = true;
  hook.readyMs = performance.now();  // ms since navigation start
  hook.scriptMs = performance.now() - T0;
});
