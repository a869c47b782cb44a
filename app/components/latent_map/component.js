// The latent map: a canvas scatter of the map points (no plotly.js to load), appended to project.mjs
// by app/components/latent_map.py, so project/f32/i32/ticks are in scope.
//
// Interactions: wheel zooms around the cursor, drag pans, double-click (or "reset view") refits,
// legend entries toggle a label. Hovering shows the point's image (sprite sheet registered by the
// hover_preview component) and announces it as a `vae:map-hover` window event. Clicking a point
//   1. rings it and moves the star to it at once,
//   2. sends `vae:select` {meta, z, testIndex}: the in-browser latent decoder moves its sliders to the
//      point's mean without waiting for the server,
//   3. sets the `select` trigger (test index) so Python loads the point (previews, ELBO breakdown).
// The star follows `vae:z` events (the decoder's sliders while dragging) through the same projection
// as the server (project.mjs mirrors vae_core/projection.py).
//
// Streamlit calls the default export again on the same DOM whenever `data` changes; the instance
// lives on the root element. The point set (a few 100 KB) is sent once per session and id and kept
// in a page-wide cache, like the decoder weights.

const POINT_SETS = (globalThis.__vaePointSets ??= new Map());  // points id -> parsed arrays
const MARGIN = { left: 52, right: 10, top: 10, bottom: 40 };
const HIT_PX = 9;  // a click/hover within this many CSS px of a point picks it

function parsePoints(p) {
  return { N: p.n_total, k: p.k, xy: f32(p.xy), labels: i32(p.labels), index: i32(p.index), means: f32(p.means) };
}

class LatentMap {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas.vae-map-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.legend = root.querySelector(".vae-map-legend");
    this.tip = root.querySelector(".vae-map-tip");
    this.tipCanvas = this.tip.querySelector("canvas");
    this.tipText = this.tip.querySelector(".vae-map-tip-text");
    this.layer = document.createElement("canvas");  // the points, redrawn only when the view changes
    this.hidden = new Set();
    this.view = null; this.viewFor = null;
    this.selectedRow = null; this.star = null; this.hover = null;
    this.raf = 0; this.layerDirty = true;
    this.hook = { draws: 0, drawn: 0, drawMs: [], firstDrawAt: NaN, selects: 0, key: null,
                  points: () => this.screenPoints(), star: () => this.star,
                  starAt: () => this.star && this.toScreen(this.star),
                  selectedIndex: () => (this.selectedRow === null ? null : this.pts.index[this.selectedRow]) };
    // Streamlit may call the cleanup between updates, so the listener removes itself once the
    // element has left the page instead
    this.onZ = (e) => {
      if (!this.root.isConnected) { window.removeEventListener("vae:z", this.onZ); this.resize.disconnect(); return; }
      this.setStarFromZ(e.detail && e.detail.z);
    };
    window.addEventListener("vae:z", this.onZ);
    this.bindPointer();
    this.resize = new ResizeObserver(() => { this.layerDirty = true; this.schedule(); });
    this.resize.observe(this.root);
    root.querySelector(".vae-map-reset").addEventListener("click", () => this.resetView());
  }

  update(data, setTriggerValue) {
    this.data = data;
    this.setTriggerValue = setTriggerValue;
    this.hook.key = data.key;
    globalThis.__vaeMap = this.hook;
    if (data.points && !POINT_SETS.has(data.points_id)) {
      POINT_SETS.set(data.points_id, parsePoints(data.points));
      while (POINT_SETS.size > 4) POINT_SETS.delete(POINT_SETS.keys().next().value);
    }
    const pts = POINT_SETS.get(data.points_id);
    if (!pts) {  // the page-wide cache was lost (e.g. a reload of this element): ask for the points again
      if (this.requested !== data.points_id) {
        this.requested = data.points_id;
        setTriggerValue("need_points", data.points_id);
      }
      return;
    }
    this.requested = null;
    const proj = data.proj.kind === "knn" ? { ...data.proj, means: pts.means, xy: pts.xy } : data.proj;
    const viewKey = `${data.points_id}:${data.n}`;
    if (this.pts !== pts || this.n !== data.n) this.layerDirty = true;
    this.pts = pts; this.n = Math.min(data.n, pts.N); this.proj = proj;
    if (this.viewFor !== viewKey) { this.viewFor = viewKey; this.view = this.fit(); }
    this.canvas.style.height = `${data.height}px`;
    this.renderLegend();
    const row = data.selected == null ? -1 : pts.index.indexOf(data.selected);
    this.selectedRow = row >= 0 ? row : null;
    if (data.z) this.setStarFromZ(data.z, false);
    this.schedule();
  }

  // --- geometry ---------------------------------------------------------------------------------
  fit() {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.n; i++) {
      const x = this.pts.xy[2 * i], y = this.pts.xy[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    const px = 0.05 * (x1 - x0), py = 0.05 * (y1 - y0);
    return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
  }

  resetView() { this.view = this.fit(); this.layerDirty = true; this.schedule(); }

  box() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return { x: MARGIN.left, y: MARGIN.top, w: Math.max(10, w - MARGIN.left - MARGIN.right),
             h: Math.max(10, h - MARGIN.top - MARGIN.bottom) };
  }

  toScreen([x, y]) {  // data -> CSS px inside the canvas
    const b = this.box(), v = this.view;
    return [b.x + ((x - v.x0) / (v.x1 - v.x0)) * b.w, b.y + ((v.y1 - y) / (v.y1 - v.y0)) * b.h];
  }

  toData(px, py) {
    const b = this.box(), v = this.view;
    return [v.x0 + ((px - b.x) / b.w) * (v.x1 - v.x0), v.y1 - ((py - b.y) / b.h) * (v.y1 - v.y0)];
  }

  nearest(px, py) {  // row of the closest visible point within HIT_PX, or null
    let best = null, bestD = HIT_PX * HIT_PX;
    for (let i = 0; i < this.n; i++) {
      if (this.hidden.has(this.pts.labels[i])) continue;
      const [sx, sy] = this.toScreen([this.pts.xy[2 * i], this.pts.xy[2 * i + 1]]);
      const d = (sx - px) ** 2 + (sy - py) ** 2;
      if (d <= bestD) { bestD = d; best = i; }
    }
    return best;
  }

  screenPoints() {  // viewport centres of the visible points: for tests and benchmarks
    const r = this.canvas.getBoundingClientRect(), b = this.box(), out = [];
    for (let i = 0; i < this.n; i++) {
      if (this.hidden.has(this.pts.labels[i])) continue;
      const [sx, sy] = this.toScreen([this.pts.xy[2 * i], this.pts.xy[2 * i + 1]]);
      if (sx >= b.x && sx <= b.x + b.w && sy >= b.y && sy <= b.y + b.h)
        out.push({ x: r.left + sx, y: r.top + sy, testIndex: this.pts.index[i], row: i });
    }
    return out;
  }

  // --- z and selection -----------------------------------------------------------------------------
  setStarFromZ(z, redraw = true) {
    if (!z || !this.proj || z.length !== this.proj.k) return;
    const p = project(this.proj, z);
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) return;
    this.star = p;
    if (redraw) this.schedule();
  }

  select(row) {
    const { k, means, index, xy } = this.pts, lim = this.data.z_range;
    const z = Array.from(means.subarray(row * k, (row + 1) * k), (v) => Math.max(-lim, Math.min(lim, v)));
    this.selectedRow = row;
    this.star = [xy[2 * row], xy[2 * row + 1]];
    this.hook.selects++;
    this.hook.lastSelectAt = performance.now();
    this.schedule();
    window.dispatchEvent(new CustomEvent("vae:select", { detail: { meta: this.data.meta, z, testIndex: index[row] } }));
    this.setTriggerValue("select", index[row]);
  }

  // --- pointer ---------------------------------------------------------------------------------------
  bindPointer() {
    const c = this.canvas;
    const local = (e) => { const r = c.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !this.view) return;
      drag = { start: local(e), view: { ...this.view }, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      if (!this.view) return;
      const [px, py] = local(e);
      if (drag) {
        const dx = px - drag.start[0], dy = py - drag.start[1];
        if (!drag.moved && dx * dx + dy * dy < 16) return;
        drag.moved = true;
        const b = this.box(), v = drag.view, sx = (v.x1 - v.x0) / b.w, sy = (v.y1 - v.y0) / b.h;
        this.view = { x0: v.x0 - dx * sx, x1: v.x1 - dx * sx, y0: v.y0 + dy * sy, y1: v.y1 + dy * sy };
        this.layerDirty = true; this.hideTip(); this.schedule();
        return;
      }
      this.hoverAt(px, py, e);
    });
    c.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const wasDrag = drag.moved;
      drag = null;
      if (wasDrag) return;
      const [px, py] = local(e), row = this.nearest(px, py);
      if (row !== null) this.select(row);
    });
    c.addEventListener("pointerleave", () => { if (!drag) this.hideTip(); });
    c.addEventListener("dblclick", () => this.resetView());
    c.addEventListener("wheel", (e) => {
      if (!this.view) return;
      e.preventDefault();
      const [px, py] = local(e), [cx, cy] = this.toData(px, py), f = Math.exp(e.deltaY * 0.0015), v = this.view;
      this.view = { x0: cx + (v.x0 - cx) * f, x1: cx + (v.x1 - cx) * f, y0: cy + (v.y0 - cy) * f, y1: cy + (v.y1 - cy) * f };
      this.layerDirty = true; this.hideTip(); this.schedule();
    }, { passive: false });
  }

  hoverAt(px, py, e) {
    const row = this.nearest(px, py);
    if (row === null) { this.hideTip(); return; }
    const t = this.pts.index[row], label = this.pts.labels[row];
    this.canvas.style.cursor = "pointer";
    if (this.hover !== row) {
      this.hover = row;
      this.tipText.textContent = label >= 0 ? `test #${t} · label ${label}` : `test #${t}`;
      const sheet = globalThis.__vaeSprites && globalThis.__vaeSprites.get(this.data.meta);
      const cell = sheet && sheet.cell.get(t);
      if (cell !== undefined && sheet.img.complete) {
        const r = Math.floor(cell / sheet.cols), c = cell % sheet.cols;
        this.tipCanvas.width = sheet.w; this.tipCanvas.height = sheet.h;
        const ctx = this.tipCanvas.getContext("2d");
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(sheet.img, c * (sheet.w + 1), r * (sheet.h + 1), sheet.w, sheet.h, 0, 0, sheet.w, sheet.h);
        this.tipCanvas.style.display = "block";
      } else {
        this.tipCanvas.style.display = "none";
      }
      window.dispatchEvent(new CustomEvent("vae:map-hover", { detail: { meta: this.data.meta, testIndex: t, label } }));
      this.schedule();
    }
    const box = this.root.getBoundingClientRect(), w = this.tip.offsetWidth || 120;
    const left = e.clientX - box.left + 14 + w > box.width ? e.clientX - box.left - 14 - w : e.clientX - box.left + 14;
    this.tip.style.transform = `translate(${Math.round(left)}px, ${Math.round(e.clientY - box.top + 14)}px)`;
    this.tip.style.visibility = "visible";
  }

  hideTip() {
    this.tip.style.visibility = "hidden";
    this.canvas.style.cursor = "grab";
    if (this.hover !== null) { this.hover = null; this.schedule(); }
  }

  // --- legend ------------------------------------------------------------------------------------------
  renderLegend() {
    const classes = this.data.classes, sig = JSON.stringify(classes);
    if (this.legendSig === sig) return;
    this.legendSig = sig;
    this.legend.replaceChildren();
    if (classes.length < 2) return;
    const title = document.createElement("span");
    title.className = "vae-map-legend-title";
    title.textContent = "label";
    this.legend.append(title);
    for (const c of classes) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "vae-map-legend-item";
      b.dataset.label = String(c.label);
      b.title = "click to hide or show this label";
      const sw = document.createElement("span");
      sw.className = "vae-map-swatch";
      sw.style.background = c.color;
      b.append(sw, document.createTextNode(c.name));
      b.classList.toggle("off", this.hidden.has(c.label));
      b.addEventListener("click", () => {
        if (this.hidden.has(c.label)) this.hidden.delete(c.label); else this.hidden.add(c.label);
        b.classList.toggle("off", this.hidden.has(c.label));
        this.layerDirty = true; this.schedule();
      });
      this.legend.append(b);
    }
  }

  // --- drawing -------------------------------------------------------------------------------------------
  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  draw() {
    if (!this.pts || !this.view) return;
    const t0 = performance.now(), dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(this.canvas.clientWidth * dpr)), H = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = W; this.canvas.height = H; this.layerDirty = true;
    }
    if (this.layerDirty) this.drawLayer(W, H, dpr);
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.drawImage(this.layer, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const b = this.box();
    ctx.save();
    ctx.beginPath(); ctx.rect(b.x, b.y, b.w, b.h); ctx.clip();
    if (this.hover !== null) this.ring(this.hover, 7, "rgba(0,0,0,0.55)", 1.5);
    if (this.selectedRow !== null) this.ring(this.selectedRow, 9, (this.th || this.theme()).ink, 2.5);
    if (this.star) this.drawStar(this.toScreen(this.star));
    ctx.restore();
    const h = this.hook, dt = performance.now() - t0;
    if (!h.draws++) h.firstDrawAt = performance.now();
    h.drawMs.push(dt); if (h.drawMs.length > 300) h.drawMs.shift();
  }

  theme() {  // canvas cannot use CSS variables: read Streamlit's theme from them
    const css = getComputedStyle(this.root), get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const text = get("--st-text-color", "#31333f");
    return { text, ink: text, font: get("--st-font", "sans-serif"),
             grid: get("--st-border-color-light", get("--st-border-color", "rgba(128,128,128,0.25)")),
             muted: text };
  }

  drawLayer(W, H, dpr) {
    this.layer.width = W; this.layer.height = H;
    const ctx = this.layer.getContext("2d"), b = this.box(), v = this.view, d = { ...this.data, ...(this.th = this.theme()) };
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = `11px ${d.font}`;
    ctx.fillStyle = d.muted; ctx.strokeStyle = d.grid; ctx.lineWidth = 1; ctx.globalAlpha = 0.7;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of ticks(v.x0, v.x1)) {
      const [sx] = this.toScreen([t, v.y0]);
      ctx.beginPath(); ctx.moveTo(sx, b.y); ctx.lineTo(sx, b.y + b.h); ctx.stroke();
      ctx.fillText(fmt(t), sx, b.y + b.h + 4);
    }
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const t of ticks(v.y0, v.y1, 5)) {
      const [, sy] = this.toScreen([v.x0, t]);
      ctx.beginPath(); ctx.moveTo(b.x, sy); ctx.lineTo(b.x + b.w, sy); ctx.stroke();
      ctx.fillText(fmt(t), b.x - 5, sy);
    }
    ctx.globalAlpha = 1; ctx.fillStyle = d.text; ctx.font = `12px ${d.font}`;
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    ctx.fillText(d.axes[0], b.x + b.w / 2, b.y + b.h + MARGIN.bottom - 2);
    ctx.save(); ctx.translate(12, b.y + b.h / 2); ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle"; ctx.fillText(d.axes[1], 0, 0); ctx.restore();
    ctx.save();
    ctx.beginPath(); ctx.rect(b.x, b.y, b.w, b.h); ctx.clip();
    const r = this.n > 3000 ? 2 : 3, colour = new Map(d.classes.map((c) => [c.label, c.color]));
    ctx.globalAlpha = 0.75;
    let drawn = 0;
    for (const [label, col] of colour) {  // one path per label: fill() once per colour
      if (this.hidden.has(label)) continue;
      ctx.fillStyle = col;
      ctx.beginPath();
      for (let i = 0; i < this.n; i++) {
        if (this.pts.labels[i] !== label) continue;
        const [sx, sy] = this.toScreen([this.pts.xy[2 * i], this.pts.xy[2 * i + 1]]);
        ctx.moveTo(sx + r, sy); ctx.arc(sx, sy, r, 0, 2 * Math.PI);
        drawn++;
      }
      ctx.fill();
    }
    ctx.restore();
    this.hook.drawn = drawn;
    this.layerDirty = false;
  }

  ring(row, radius, color, width) {
    const [sx, sy] = this.toScreen([this.pts.xy[2 * row], this.pts.xy[2 * row + 1]]), ctx = this.ctx;
    ctx.beginPath(); ctx.arc(sx, sy, radius, 0, 2 * Math.PI);
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.stroke();
  }

  drawStar([sx, sy]) {
    const ctx = this.ctx, R = 11, r = 4.6;
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const a = -Math.PI / 2 + (i * Math.PI) / 5, rad = i % 2 ? r : R;
      ctx.lineTo(sx + rad * Math.cos(a), sy + rad * Math.sin(a));
    }
    ctx.closePath();
    ctx.fillStyle = (this.th || this.theme()).ink; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
  }

  destroy() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
  }
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-3) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
}

export default function (component) {
  const { parentElement, setTriggerValue } = component;
  const data = component.data && typeof component.data.json === "string" ? JSON.parse(component.data.json) : component.data;
  const root = parentElement.querySelector(".vae-map");
  if (!root || !data) return;
  const inst = (root.__vaeMap ??= new LatentMap(root));
  inst.update(data, setTriggerValue);
  return () => inst.destroy();
}
