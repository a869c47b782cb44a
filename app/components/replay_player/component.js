// The training replay player (app/components/replay_player.py): the test-set map, the snapshot's
// images, KL per dimension and the ELBO curves, all drawn on 2-D canvases at one snapshot; Play steps
// through the snapshots every data.frame_ms in the browser, the slider seeks, a click on the ELBO
// chart goes to that epoch. A new data.index from the server (its Epoch scrubber) seeks and pauses.
//
// Streamlit calls the default export again on the same DOM whenever `data` changes; the instance
// lives on the root element. A replay's arrays arrive once per session (keyed by content id) and stay
// in a page-wide cache; a lost one is asked for again (need_data). root.dataset.ready = "1" once the
// map and the images have been drawn (the bench's and browser tests' "page complete"). With
// data.debug (VAE_DEBUG_HOOKS=1) window.__vaeReplay exposes the state for tests.

const REPLAYS = (globalThis.__vaeReplays ??= new Map());  // id -> parsed replay
const REPLAY_LABELS = { u1: Uint8Array, i2: Int16Array, i4: Int32Array };
const PAD = { left: 50, right: 10, top: 8, bottom: 36 };
const HIT = 8;  // px: hover picks the nearest point within this
const CURVES = [["elbo", "ELBO", "#4e79a7"], ["recon", "recon E_q log p(x|z)", "#59a14f"], ["kl", "KL", "#e15759"]];
const ALIVE = "#4e79a7", COLLAPSED = "#bab0ac";

function parseReplay(data) {
  const h = data.replay;
  const rec = {
    h,
    q: data.blob("xy", Uint16Array),
    labels: data.blob("labels", REPLAY_LABELS[h.labels_dtype]),
    index: data.blob("index", Int32Array),
    kl: data.blob("kl_per_dim", Float32Array),
    sheet: null,
  };
  rec.sheetReady = createImageBitmap(new Blob([data.blob("sheet", Uint8Array)], { type: "image/png" }))
    .then((b) => { rec.sheet = b; })
    .catch(() => { rec.sheetFailed = true; });
  return rec;
}

class ReplayPlayer {
  constructor(root) {
    this.root = root;
    const q = (s) => root.querySelector(s);
    this.playBtn = q(".vae-replay-play");
    this.slider = q(".vae-replay-slider");
    this.epochEl = q(".vae-replay-epoch");
    this.readoutEl = q(".vae-replay-readout");
    this.mapCanvas = q(".vae-replay-map");
    this.imgCanvas = q(".vae-replay-images");
    this.klCanvas = q(".vae-replay-kl");
    this.curveCanvas = q(".vae-replay-curves");
    this.legend = q(".vae-replay-legend");
    this.curveLegend = q(".vae-replay-curve-legend");
    this.i = 0; this.playing = false; this.timer = 0; this.raf = 0;
    this.hidden = new Set(); this.hoverRow = null; this.hoverEpoch = null;
    this.hook = { index: 0, epoch: null, playing: false, draws: 0, firstDrawAt: null, imageDrawn: false };
    this.playBtn.addEventListener("click", () => (this.playing ? this.stop() : this.play()));
    this.slider.addEventListener("input", () => { this.pause(); this.seek(+this.slider.value); });
    this.slider.addEventListener("change", () => this.report());
    this.mapCanvas.addEventListener("mousemove", (e) => this.hoverMap(e));
    this.mapCanvas.addEventListener("mouseleave", () => { this.hoverRow = null; this.tip(this.mapCanvas, null); this.schedule(); });
    this.klCanvas.addEventListener("mousemove", (e) => this.hoverKl(e));
    this.klCanvas.addEventListener("mouseleave", () => this.tip(this.klCanvas, null));
    this.curveCanvas.addEventListener("mousemove", (e) => this.hoverCurves(e));
    this.curveCanvas.addEventListener("mouseleave", () => { this.hoverEpoch = null; this.tip(this.curveCanvas, null); this.schedule(); });
    this.curveCanvas.addEventListener("click", (e) => { this.pause(); this.seek(this.curveIndexAt(e)); this.report(); });
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(root);
  }

  update(data, setTriggerValue) {
    this.setTriggerValue = setTriggerValue;
    this.resize.observe(this.root);  // again: a no-op unless a cleanup disconnected it
    if (data.replay && !REPLAYS.has(data.id)) REPLAYS.set(data.id, parseReplay(data));
    const rec = REPLAYS.get(data.id);
    if (data.debug) globalThis.__vaeReplay = this.hook;
    if (!rec) {  // this tab lost the arrays (or never got them): ask once per id
      if (this.requested !== data.id) { this.requested = data.id; setTriggerValue("need_data", data.id); }
      return;
    }
    this.frameMs = data.frame_ms;
    if (this.id !== data.id) {
      this.id = data.id; this.rec = rec; this.h = rec.h; this.hidden.clear(); this.hoverRow = null;
      this.klRange = this.yRange = null;  // the axes of another replay
      this.slider.max = String(this.h.epochs.length - 1);
      this.root.querySelector(".vae-replay-kl-title").textContent =
        `KL per dimension, nats (grey: < ${this.h.collapsed}, collapsed)`;
      this.buildLegends();
      this.serverIndex = undefined; this.pending = null;
      this.root.dataset.ready = "";
    }
    if (data.index !== this.serverIndex) {  // the server's scrubber moved (or first draw): go there, paused
      this.serverIndex = data.index;
      if (data.index === this.pending) this.pending = null;  // the server following what this player reported
      else {
        this.pending = null;
        this.pause();
        this.seek(Math.max(0, Math.min(this.h.epochs.length - 1, data.index)));
      }
    }
    if (!rec.sheet && !rec.sheetFailed) rec.sheetReady.then(() => this.schedule());
    this.schedule();
  }

  buildLegends() {
    this.legend.replaceChildren();
    for (const c of this.h.classes) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "vae-replay-legend-item"; b.title = "show or hide this label";
      const sw = document.createElement("span");
      sw.className = "vae-replay-swatch"; sw.style.background = c.color;
      b.append(sw, document.createTextNode(c.label < 0 ? "points" : `label ${c.name}`));
      b.addEventListener("click", () => {
        if (this.hidden.has(c.label)) this.hidden.delete(c.label); else this.hidden.add(c.label);
        b.classList.toggle("off", this.hidden.has(c.label));
        this.schedule();
      });
      this.legend.append(b);
    }
    this.curveLegend.replaceChildren();
    for (const [, name, colour] of CURVES) {
      const s = document.createElement("span");
      s.className = "vae-replay-legend-item";
      const line = document.createElement("span");
      line.className = "vae-replay-line"; line.style.background = colour;
      s.append(line, document.createTextNode(name));
      this.curveLegend.append(s);
    }
  }

  // --- state ---------------------------------------------------------------------------------------
  seek(i) {
    this.i = i;
    this.slider.value = String(i);
    this.schedule();
  }

  play() {
    if (!this.h) return;
    this.seek(playFrom(this.i, this.h.epochs.length));
    this.playing = true;
    this.playBtn.textContent = "Pause";
    this.tick();
  }

  tick() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const n = nextIndex(this.i, this.h.epochs.length);
      if (n === null) { this.stop(); return; }
      this.seek(n);
      this.tick();
    }, this.frameMs);
  }

  stop() {  // the user's Pause, or the last snapshot reached: pause and tell the server where
    this.pause();
    this.report();
  }

  report() {  // the server's scrubber and numbers follow the player to snapshot i (the `epoch_at` trigger)
    if (this.i === this.serverIndex) return;
    this.pending = this.i;
    if (this.setTriggerValue) this.setTriggerValue("epoch_at", this.i);
  }

  pause() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.playing = false;
    this.playBtn.textContent = "Play";
    this.hook.playing = false;
  }

  // --- drawing -------------------------------------------------------------------------------------
  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  theme() {  // canvas cannot use CSS variables: read Streamlit's theme from them
    const css = getComputedStyle(this.root), get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return { text: get("--st-text-color", "#31333f"), font: get("--st-font", "sans-serif"),
             grid: get("--st-border-color-light", get("--st-border-color", "rgba(128,128,128,0.25)")) };
  }

  context(canvas) {  // fit the canvas's pixels to its CSS box; -> [ctx, width, height] in CSS px
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    const W = Math.max(1, Math.round(w * dpr)), H = Math.max(1, Math.round(h * dpr));
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [ctx, w, h];
  }

  draw() {
    if (!this.h || !this.root.isConnected) return;
    const h = this.h, i = this.i, k = h.k;
    this.th = this.theme();
    const klRow = this.rec.kl.subarray(i * k, (i + 1) * k);
    this.epochEl.textContent = `epoch ${h.epochs[i]}`;
    this.readoutEl.textContent = readout(h, i, klRow);
    this.drawMap();
    const imageDrawn = this.drawImages();
    this.drawKl(klRow);
    this.drawCurves();
    Object.assign(this.hook, { index: i, epoch: h.epochs[i], playing: this.playing, imageDrawn });
    if (!this.hook.draws++) this.hook.firstDrawAt = performance.now();
    if (imageDrawn || this.rec.sheetFailed) this.root.dataset.ready = "1";
  }

  mapTransform(w, hgt) {
    const b = { x: PAD.left, y: PAD.top, w: Math.max(1, w - PAD.left - PAD.right), h: Math.max(1, hgt - PAD.top - PAD.bottom) };
    return [b, viewTransform(this.h.box, b, true)];  // PCA axes share a unit: equal aspect
  }

  axes(ctx, b, xt, yt, toX, toY, xText, yText, xTitle, yTitle) {  // grid lines, tick labels, axis titles
    const th = this.th;
    ctx.font = `11px ${th.font}`; ctx.strokeStyle = th.grid; ctx.fillStyle = th.text; ctx.lineWidth = 1;
    ctx.globalAlpha = 0.45;
    ctx.beginPath();
    for (const x of xt) { const sx = toX(x); ctx.moveTo(sx, b.y); ctx.lineTo(sx, b.y + b.h); }
    for (const y of yt) { const sy = toY(y); ctx.moveTo(b.x, sy); ctx.lineTo(b.x + b.w, sy); }
    ctx.stroke();
    ctx.globalAlpha = 0.75;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const x of xt) ctx.fillText(xText(x), toX(x), b.y + b.h + 4);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const y of yt) ctx.fillText(yText(y), b.x - 5, toY(y));
    ctx.globalAlpha = 1; ctx.font = `12px ${th.font}`;
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    if (xTitle) ctx.fillText(xTitle, b.x + b.w / 2, b.y + b.h + PAD.bottom - 1);
    if (yTitle) {
      ctx.save(); ctx.translate(11, b.y + b.h / 2); ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "middle"; ctx.fillText(yTitle, 0, 0); ctx.restore();
    }
  }

  drawMap() {
    const [ctx, w, hgt] = this.context(this.mapCanvas), h = this.h;
    const [b, t] = this.mapTransform(w, hgt);
    const v = { x0: (b.x - t.bx) / t.ax, x1: (b.x + b.w - t.bx) / t.ax, y0: (b.y + b.h - t.by) / t.ay, y1: (b.y - t.by) / t.ay };
    const xs = (x) => t.ax * x + t.bx, ys = (y) => t.ay * y + t.by;
    this.axes(ctx, b, ticks(v.x0, v.x1), ticks(v.y0, v.y1, 5), xs, ys, tickText, tickText, h.axes[0], h.axes[1]);
    const xy = (this.xy = snapshotXY(this.rec.q, this.i, h.n_points, h.box)), labels = this.rec.labels;
    ctx.save();
    ctx.beginPath(); ctx.rect(b.x, b.y, b.w, b.h); ctx.clip();
    ctx.globalAlpha = 0.7;
    for (const c of h.classes) {  // one path per label: ~1 ms for 1,000 points
      if (this.hidden.has(c.label)) continue;
      ctx.beginPath();
      for (let p = 0; p < h.n_points; p++) {
        if (labels[p] !== c.label) continue;
        const sx = xs(xy[2 * p]), sy = ys(xy[2 * p + 1]);
        ctx.moveTo(sx + 2.2, sy); ctx.arc(sx, sy, 2.2, 0, 2 * Math.PI);
      }
      ctx.fillStyle = c.color; ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (this.hoverRow !== null && !this.hidden.has(labels[this.hoverRow])) {
      ctx.beginPath(); ctx.arc(xs(xy[2 * this.hoverRow]), ys(xy[2 * this.hoverRow + 1]), 6, 0, 2 * Math.PI);
      ctx.strokeStyle = this.th.text; ctx.lineWidth = 1.5; ctx.stroke();
    }
    ctx.restore();
    this.mapT = t;
  }

  drawImages() {  // snapshot i's tile of the sheet, as large as fits, centred
    const [ctx, w, hgt] = this.context(this.imgCanvas), sheet = this.rec.sheet, g = this.h.sheet;
    if (!sheet) return false;
    const r = tileRect(this.i, g), s = Math.min(w / r.w, hgt / r.h);
    const dw = r.w * s, dh = r.h * s;
    ctx.imageSmoothingEnabled = s < 2;  // blocky pixels once they are big enough to see
    ctx.drawImage(sheet, r.sx, r.sy, r.w, r.h, (w - dw) / 2, 0, dw, dh);
    return true;
  }

  klBox(w, hgt) {
    return { x: PAD.left, y: PAD.top, w: Math.max(1, w - PAD.left - PAD.right), h: Math.max(1, hgt - PAD.top - PAD.bottom) };
  }

  drawKl(klRow) {
    const [ctx, w, hgt] = this.context(this.klCanvas), h = this.h, k = h.k;
    const b = this.klBox(w, hgt), [e0, e1] = (this.klRange ??= klRange(this.rec.kl, h.collapsed));
    const band = b.w / k, toX = (d) => b.x + (d + 0.5) * band;
    const toY = (v) => b.y + b.h * (1 - (Math.log10(Math.max(v, 1e-4)) - e0) / (e1 - e0));
    const every = Math.ceil(k / Math.max(1, Math.floor(b.w / 28)));  // dimension labels that fit
    const dims = [...Array(k).keys()].filter((d) => d % every === 0);
    this.axes(ctx, b, [], logTicks(e0, e1).map((e) => 10 ** e), toX, toY, (d) => `z${d + 1}`, powerText, "latent dimension", "");
    ctx.font = `11px ${this.th.font}`; ctx.fillStyle = this.th.text; ctx.globalAlpha = 0.75;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const d of dims) ctx.fillText(`z${d + 1}`, toX(d), b.y + b.h + 4);
    ctx.globalAlpha = 1;
    for (let d = 0; d < k; d++) {
      const y = toY(klRow[d]);
      ctx.fillStyle = klRow[d] < h.collapsed ? COLLAPSED : ALIVE;
      ctx.fillRect(b.x + d * band + band * 0.12, y, band * 0.76, b.y + b.h - y);
    }
    ctx.save();  // the collapse threshold
    ctx.setLineDash([5, 4]); ctx.strokeStyle = "#888"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(b.x, toY(h.collapsed)); ctx.lineTo(b.x + b.w, toY(h.collapsed)); ctx.stroke();
    ctx.restore();
    this.klBand = { b, band };
  }

  curveBox(w, hgt) {
    return { x: PAD.left + 8, y: PAD.top, w: Math.max(1, w - PAD.left - 8 - PAD.right), h: Math.max(1, hgt - PAD.top - PAD.bottom) };
  }

  drawCurves() {
    const [ctx, w, hgt] = this.context(this.curveCanvas), h = this.h, ep = h.epochs;
    const b = this.curveBox(w, hgt), [lo, hi] = (this.yRange ??= seriesRange(h.elbo, h.recon, h.kl));
    const e0 = ep[0], e1 = ep[ep.length - 1] > e0 ? ep[ep.length - 1] : e0 + 1;
    const toX = (e) => b.x + ((e - e0) / (e1 - e0)) * b.w, toY = (v) => b.y + b.h * (1 - (v - lo) / (hi - lo));
    this.axes(ctx, b, ticks(e0, e1, 5).filter((e) => Number.isInteger(e)), ticks(lo, hi, 5), toX, toY, tickText, tickText, "epoch", "");
    ctx.lineWidth = 2;
    for (const [field, , colour] of CURVES) {
      ctx.beginPath();
      h[field].forEach((v, j) => (j ? ctx.lineTo(toX(ep[j]), toY(v)) : ctx.moveTo(toX(ep[j]), toY(v))));
      ctx.strokeStyle = colour; ctx.stroke();
    }
    const mark = (j, dash, alpha) => {  // a vertical line at snapshot j, with its three values as dots
      ctx.save(); ctx.globalAlpha = alpha; ctx.setLineDash(dash); ctx.strokeStyle = this.th.text; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(toX(ep[j]), b.y); ctx.lineTo(toX(ep[j]), b.y + b.h); ctx.stroke(); ctx.restore();
      for (const [field, , colour] of CURVES) {
        ctx.beginPath(); ctx.arc(toX(ep[j]), toY(h[field][j]), 3.5, 0, 2 * Math.PI); ctx.fillStyle = colour; ctx.fill();
      }
    };
    if (this.hoverEpoch !== null && this.hoverEpoch !== this.i) mark(this.hoverEpoch, [2, 3], 0.4);
    mark(this.i, [4, 3], 0.9);
    this.curveT = { b, e0, e1 };
  }

  // --- hover ---------------------------------------------------------------------------------------
  tip(canvas, text, x = 0, y = 0) {
    const el = canvas.parentElement.querySelector(".vae-replay-tip");
    if (!text) { el.style.visibility = "hidden"; return; }
    el.textContent = text;
    const left = Math.min(x + 12, canvas.clientWidth - el.offsetWidth - 2);
    el.style.left = `${Math.max(0, left)}px`; el.style.top = `${Math.max(0, y - 30)}px`;
    el.style.visibility = "visible";
  }

  hoverMap(e) {
    if (!this.xy || !this.mapT) return;
    const t = this.mapT, mx = e.offsetX, my = e.offsetY, labels = this.rec.labels;
    let best = null, bd = HIT * HIT;
    for (let p = 0; p < this.h.n_points; p++) {
      if (this.hidden.has(labels[p])) continue;
      const dx = t.ax * this.xy[2 * p] + t.bx - mx, dy = t.ay * this.xy[2 * p + 1] + t.by - my, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = p; }
    }
    if (best !== this.hoverRow) { this.hoverRow = best; this.schedule(); }
    this.tip(this.mapCanvas, best === null ? null :
      `test #${this.rec.index[best]}${labels[best] >= 0 ? ` \u00b7 label ${labels[best]}` : ""}`, mx, my);
  }

  hoverKl(e) {
    if (!this.klBand) return;
    const { b, band } = this.klBand, d = Math.floor((e.offsetX - b.x) / band), k = this.h.k;
    if (d < 0 || d >= k) { this.tip(this.klCanvas, null); return; }
    const v = this.rec.kl[this.i * k + d];
    this.tip(this.klCanvas, `z${d + 1}: KL ${v.toPrecision(3)} nats${v < this.h.collapsed ? " (collapsed)" : ""}`, e.offsetX, e.offsetY);
  }

  curveIndexAt(e) {
    const { b, e0, e1 } = this.curveT;
    return nearestEpoch(this.h.epochs, e0 + ((e.offsetX - b.x) / b.w) * (e1 - e0));
  }

  hoverCurves(e) {
    if (!this.curveT) return;
    const j = this.curveIndexAt(e), h = this.h;
    if (j !== this.hoverEpoch) { this.hoverEpoch = j; this.schedule(); }
    this.tip(this.curveCanvas, `epoch ${h.epochs[j]}: ELBO ${nats(h.elbo[j])}, recon ${nats(h.recon[j])}, KL ${nats(h.kl[j])}`,
      e.offsetX, e.offsetY);
  }

  destroy() {
    this.pause();
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.resize.disconnect();
  }
}

export default function (component) {
  const { parentElement, setTriggerValue } = component;
  const data = component.data instanceof Uint8Array ? unpack(component.data) : null;
  const root = parentElement.querySelector(".vae-replay");
  if (!root || !data) return;
  const inst = (root.__vaeReplay ??= new ReplayPlayer(root));
  inst.update(data, setTriggerValue);
  return () => inst.destroy();
}
