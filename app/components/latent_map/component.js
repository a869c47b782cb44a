// The latent map: a scatter of the map points drawn with WebGL (gl.js; a 2-D canvas fallback), with
// axes, rings and the star on a 2-D overlay canvas. Appended to project.mjs, points.mjs and gl.js by
// app/components/latent_map.py, so their functions are in scope.
//
// Interactions: wheel zooms around the cursor, drag pans, double-click (or "reset view") refits,
// legend entries toggle a label. Pan and zoom change only the transform (no re-upload); picking
// uses a uniform grid (points.mjs). Above data.density_above points in view, a density image of
// binned counts replaces the points until you zoom in.
// Hovering shows the point's image and announces it as a `vae:map-hover` window event, with a painter
// of that image for the preview strip (hover_preview); an image not in the page's sprite sheet is
// asked of Python with its neighbours' (the `need_thumbs` trigger) and arrives as data.thumbs.
// Clicking a point
//   1. rings it and moves the star to it at once,
//   2. sends `vae:select` {meta, z, testIndex}: the in-browser latent decoder moves its sliders to the
//      point's mean without waiting for the server,
//   3. sets the `select` trigger (test index) so Python loads the point (previews, ELBO breakdown).
// The star follows `vae:z` events (the decoder's sliders while dragging) through the same projection
// as the server (project.mjs mirrors vae_core/projection.py).
// Overlays: data.highlight (a label, from the explorer's "Map points by label") draws the other
// labels dimmed (points.mjs pointColours) and names it in the legend; the selected point's q(z|x)
// samples z arrive after the map, from the panels (latent_map.py map_cloud -> cloud.js: the page-wide
// CLOUDS and a `vae:cloud` event), are placed by project() as the star is, and drawn as small dots
// around it (points.mjs cloudDots).
//
// PCA and latent-plane maps are equal-aspect (one data unit as many px across as up: viewTransform);
// a star outside the visible map is marked at the border, with an arrow pointing to it (edgeMarker).
// When the page asks for it (data.report_drawn), the first frame with a new point set is reported
// (the `drawn` trigger): the explorer sends its panels only then, so the map comes first.
// A map given data.view starts on (and resets to) that data rectangle instead of fitting its points; a
// map whose projection is {kind: "none"} places no z (no star, no cloud): the compare page's two maps.
// Measurement hooks (window.__vaeMap for the explorer's, window.__vaeMaps[key] for every map; read by
// tests and bench/) exist only with data.debug
// (VAE_DEBUG_HOOKS=1 on the server).
//
// Streamlit calls the default export again on the same DOM whenever `data` changes; the instance
// lives on the root element. Point sets and value sets arrive once per session, keyed by a content
// hash, and stay in page-wide caches; a lost one is asked for again (need_points / need_values).

const POINT_SETS = (globalThis.__vaePointSets ??= new Map());  // points id -> parsed arrays
const VALUE_SETS = (globalThis.__vaeValueSets ??= new Map());  // values id -> Float32Array
const THUMBS = (globalThis.__vaeThumbs ??= new Map());         // meta|thumbs_scope -> Map(test index -> thumbnail)
const CLOUDS = (globalThis.__vaeClouds ??= new Map());         // meta -> the selected point's samples (cloud.js)
const MARGIN = { left: 52, right: 10, top: 10, bottom: 40 };
const HIT_PX = 9;         // a click/hover within this many CSS px of a point picks it
const THUMB_BATCH = 64;   // hover images asked for at once: the hovered point and its map neighbours
const LABEL_ARRAYS = { u1: Uint8Array, i2: Int16Array, i4: Int32Array };

function parsePoints(data) {
  const p = data.points, b = data.blob;
  return { N: p.n_total, k: p.k, xy: b("points.xy", Float32Array), labels: b("points.labels", LABEL_ARRAYS[p.labels_dtype]),
           index: b("points.index", Int32Array), means: b("points.means", Float32Array), grids: new Map() };
}

function keepLast(map, size) { while (map.size > size) map.delete(map.keys().next().value); }

class LatentMap {
  constructor(root, want) {
    this.root = root;
    this.canvas = root.querySelector("canvas.vae-map-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.pointCanvas = root.querySelector("canvas.vae-map-points");
    this.layer = pointLayer(this.pointCanvas, want);
    this.legend = root.querySelector(".vae-map-legend");
    this.tip = root.querySelector(".vae-map-tip");
    this.tipCanvas = this.tip.querySelector("canvas");
    this.tipText = this.tip.querySelector(".vae-map-tip-text");
    this.hidden = new Set();
    this.view = null; this.viewFor = null;
    this.selectedRow = null; this.star = null; this.hover = null;
    this.raf = 0; this.colourSig = null; this.asked = new Set();
    this.offMap = null;  // the star's border marker {x, y, angle} in CSS px inside the canvas, or null
    this.hook = { draws: 0, drawn: 0, drawMs: [], firstDrawAt: NaN, selects: 0, key: null, renderer: this.layer.kind,
                  density: false, thumbRequests: 0,
                  points: () => this.screenPoints(), star: () => this.star,
                  starAt: () => this.star && this.toScreen(this.star),
                  starOffMap: () => this.offMap && { ...this.offMap },
                  scale: () => { const t = this.transform(); return [t.ax, -t.ay]; },  // px per data unit in x, y
                  visibleRange: () => this.visibleRange(),
                  selectedIndex: () => (this.selectedRow === null ? null : this.pts.index[this.selectedRow]),
                  colourOf: (row) => Array.from(this.colours.subarray(4 * row, 4 * row + 4)),
                  highlight: null, cloudDrawn: 0,  // the highlighted label; q(z|x) dots drawn in the last frame
                  cloud: () => { const c = CLOUDS.get(this.data.meta);  // the last cloud and where it was placed
                                 return c ? { testIndex: c.testIndex, n: c.z ? c.z.length : 0, xy: c.xy || null } : null; },
                  overlayMarks: () => this.overlayMarks(),
                  axes: () => [...this.data.axes],  // the axis titles drawn  // [{name, text, x, y}] in the viewport
                  pick: (x, y) => { const r = this.canvas.getBoundingClientRect(), row = this.nearest(x - r.left, y - r.top);
                                    return row === null ? null : this.pts.index[row]; } };
    // Streamlit may call the cleanup between updates, so the listener removes itself once the
    // element has left the page instead
    this.onZ = (e) => {
      if (!this.root.isConnected) { window.removeEventListener("vae:z", this.onZ); this.resize.disconnect(); return; }
      this.setStarFromZ(e.detail && e.detail.z);
    };
    window.addEventListener("vae:z", this.onZ);
    this.onCloud = (e) => {
      if (!this.root.isConnected) { window.removeEventListener("vae:cloud", this.onCloud); return; }
      if (this.data && e.detail && e.detail.meta === this.data.meta) this.schedule();
    };
    window.addEventListener("vae:cloud", this.onCloud);
    this.bindPointer();
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.root);
    root.querySelector(".vae-map-reset").addEventListener("click", () => this.resetView());
  }

  update(data, setTriggerValue) {
    this.data = data;
    this.th = null;  // re-read the theme's colours on the next draw
    this.setTriggerValue = setTriggerValue;
    this.hook.key = data.key;
    this.hook.highlight = data.highlight ?? null;
    if (data.debug) {  // the explorer's map as before; every map by its key (the compare page has two)
      if (data.meta === "vae-latent-map") globalThis.__vaeMap = this.hook;
      (globalThis.__vaeMaps ??= {})[data.key] = this.hook;
    }
    if (!this.hook.firstDataAt) this.hook.firstDataAt = performance.now();
    if (data.points && !POINT_SETS.has(data.points_id)) {
      const t0 = performance.now();
      POINT_SETS.set(data.points_id, parsePoints(data));
      this.hook.parseMs = performance.now() - t0;
      keepLast(POINT_SETS, 4);
    }
    if (data.values && !VALUE_SETS.has(data.values.id)) {
      VALUE_SETS.set(data.values.id, data.blob("values", Float32Array));
      keepLast(VALUE_SETS, 8);
    }
    if (data.thumbs) this.addThumbs(data.thumbs);
    const pts = POINT_SETS.get(data.points_id);
    const valuesId = data.colour.mode === "value" ? data.colour.values_id : null;
    if (!pts || (valuesId && !VALUE_SETS.has(valuesId))) {  // a page-wide cache was lost (e.g. a reload of this element)
      const need = !pts ? ["need_points", data.points_id] : ["need_values", valuesId];
      if (this.requested !== need.join(":")) { this.requested = need.join(":"); setTriggerValue(...need); }
      return;
    }
    this.requested = null;
    this.proj = data.proj.kind === "knn" ? { ...data.proj, means: pts.means, xy: pts.xy } : data.proj;
    const n = Math.min(data.n, pts.N);
    if (this.pts !== pts || this.n !== n) {
      this.pts = pts; this.n = n;
      this.layer.setPoints(pts.xy, n);
      if (!pts.grids.has(n)) pts.grids.set(n, buildGrid(pts.xy, n));
      this.grid = pts.grids.get(n);
      this.colourSig = null;
    }
    this.values = valuesId ? VALUE_SETS.get(valuesId) : null;
    const viewKey = `${data.points_id}:${n}:${JSON.stringify(data.view ?? null)}`;
    if (this.viewFor !== viewKey) { this.viewFor = viewKey; this.view = this.fit(); }
    this.canvas.style.height = `${data.height}px`;
    this.renderLegend();
    const row = data.selected == null ? -1 : pts.index.indexOf(data.selected);
    this.selectedRow = row >= 0 && row < n ? row : null;
    if (data.z) this.setStarFromZ(data.z, false);
    if (this.hover !== null && data.thumbs) this.announceHover(this.hover);  // its image may just have come
    if (this.hook.draws) this.schedule();
    else this.draw();  // the first frame at once: no need to wait for the next animation frame
  }

  // --- geometry ---------------------------------------------------------------------------------
  fit() {
    if (this.data.view) return { ...this.data.view };  // the page's box (two maps that share one)
    const g = this.grid, x0 = g.x0, y0 = g.y0, x1 = g.x0 + g.cw * g.side, y1 = g.y0 + g.ch * g.side;
    const px = 0.05 * (x1 - x0), py = 0.05 * (y1 - y0);
    return { x0: x0 - px, x1: x1 + px, y0: y0 - py, y1: y1 + py };
  }

  resetView() { this.view = this.fit(); this.schedule(); }

  box() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return { x: MARGIN.left, y: MARGIN.top, w: Math.max(10, w - MARGIN.left - MARGIN.right),
             h: Math.max(10, h - MARGIN.top - MARGIN.bottom) };
  }

  equalAspect() { return !!this.data.proj.equal_aspect; }  // PCA and the latent plane (latent_map.equal_aspect)

  transform(view = this.view) {  // data -> CSS px inside the canvas: sx = ax x + bx, sy = ay y + by
    return viewTransform(view, this.box(), this.equalAspect());
  }

  visibleRange() {  // the data rectangle the plot box shows (wider than this.view on an equal-aspect map)
    const b = this.box(), [x0, y1] = this.toData(b.x, b.y), [x1, y0] = this.toData(b.x + b.w, b.y + b.h);
    return { x0, x1, y0, y1 };
  }

  toScreen([x, y]) { const t = this.transform(); return [t.ax * x + t.bx, t.ay * y + t.by]; }

  toData(px, py) { const t = this.transform(); return [(px - t.bx) / t.ax, (py - t.by) / t.ay]; }

  visible = (i) => this.colours[4 * i + 3] !== 0;

  nearest(px, py) {  // row of the closest visible point within HIT_PX, or null
    if (!this.colours) return null;
    return nearest(this.grid, this.pts.xy, this.transform(), px, py, HIT_PX, this.visible);
  }

  screenPoints() {  // viewport centres of the visible points in the plot box: for tests and benchmarks
    const r = this.canvas.getBoundingClientRect(), b = this.box(), t = this.transform(), out = [], xy = this.pts.xy;
    for (let i = 0; i < this.n; i++) {
      if (!this.visible(i)) continue;
      const sx = t.ax * xy[2 * i] + t.bx, sy = t.ay * xy[2 * i + 1] + t.by;
      if (sx >= b.x && sx <= b.x + b.w && sy >= b.y && sy <= b.y + b.h)
        out.push({ x: r.left + sx, y: r.top + sy, testIndex: this.pts.index[i], row: i });
    }
    return out;
  }

  // --- z and selection -----------------------------------------------------------------------------
  placesZ() { return !!this.proj && this.proj.kind !== "none"; }  // "none": a map of points only, no star

  setStarFromZ(z, redraw = true) {
    if (!this.placesZ() || !Array.isArray(z) || z.length !== this.proj.k) return;
    const p = project(this.proj, z);
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) return;
    this.star = p;
    if (redraw) this.schedule();
  }

  select(row) {
    const { k, means, index, xy } = this.pts, lim = this.data.z_range;
    const z = Array.from(means.subarray(row * k, (row + 1) * k), (v) => Math.max(-lim, Math.min(lim, v)));
    this.selectedRow = row;
    if (this.placesZ()) this.star = [xy[2 * row], xy[2 * row + 1]];
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
        const v = drag.view, t = this.transform(v), sx = dx / t.ax, sy = dy / t.ay;
        this.view = { x0: v.x0 - sx, x1: v.x1 - sx, y0: v.y0 - sy, y1: v.y1 - sy };
        this.hideTip(); this.schedule();
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
      this.hideTip(); this.schedule();
    }, { passive: false });
  }

  // --- hover images ------------------------------------------------------------------------------------
  // a test index names an image only within one model's test set: another model's images are another cache
  thumbsKey() { return `${this.data.meta}|${this.data.thumbs_scope ?? ""}`; }

  addThumbs(t) {  // a sprite sheet of some points' images from Python (data.thumbs)
    if (!THUMBS.has(this.thumbsKey())) THUMBS.set(this.thumbsKey(), new Map());
    const cache = THUMBS.get(this.thumbsKey());
    if (cache.has(`sheet:${t.id}`)) return;
    const img = new Image();
    img.onload = () => { if (this.hover !== null) this.announceHover(this.hover); };
    img.src = "data:image/png;base64," + t.sprite;
    cache.set(`sheet:${t.id}`, true);
    t.index.forEach((testIndex, i) => cache.set(testIndex, { img, sx: (i % t.cols) * (t.w + 1),
                                                             sy: Math.floor(i / t.cols) * (t.h + 1), w: t.w, h: t.h }));
    for (const i of t.index) this.asked.delete(i);
  }

  thumbFor(testIndex) {  // {img, sx, sy, w, h} once loaded, else null
    // the page's sprite sheet (registered by hover_preview): the only place its cells are looked up
    const sheet = globalThis.__vaeSprites && globalThis.__vaeSprites.get(this.data.meta), cell = sheet && sheet.cell.get(testIndex);
    if (cell !== undefined) {
      if (!sheet.img.complete) {  // announce again once it has loaded
        sheet.img.addEventListener("load", () => { if (this.hover !== null) this.announceHover(this.hover); }, { once: true });
        return null;
      }
      return { img: sheet.img, sx: (cell % sheet.cols) * (sheet.w + 1), sy: Math.floor(cell / sheet.cols) * (sheet.h + 1),
               w: sheet.w, h: sheet.h };
    }
    const t = THUMBS.get(this.thumbsKey()), th = t && t.get(testIndex);
    if (th) return th.img.complete && th.img.naturalWidth ? th : null;
    if (this.data.thumbs_on_demand && !this.asked.has(testIndex)) this.askThumbs(testIndex);
    return null;
  }

  askThumbs(testIndex) {  // the hovered point and its nearest map neighbours whose images are missing
    const row = this.pts.index.indexOf(testIndex), have = THUMBS.get(this.thumbsKey());
    const want = neighbours(this.grid, this.pts.xy, row, 4 * THUMB_BATCH, this.visible).map((r) => this.pts.index[r])
      .filter((t) => !(have && have.has(t)) && !this.asked.has(t)).slice(0, THUMB_BATCH);
    for (const t of want) this.asked.add(t);
    this.hook.thumbRequests++;
    this.setTriggerValue("need_thumbs", want);
  }

  announceHover(row) {  // the tooltip's image, and the event the preview strip (hover_preview) paints from
    const t = this.pts.index[row], label = this.pts.labels[row], thumb = this.thumbFor(t);
    if (thumb) {
      paintThumb(this.tipCanvas, thumb);
      this.tipCanvas.style.display = "block";
      this.tipCanvas.dataset.testIndex = String(t);
    } else {
      this.tipCanvas.style.display = "none";
    }
    const paint = thumb && ((canvas) => paintThumb(canvas, thumb));  // for the preview strip (hover_preview)
    window.dispatchEvent(new CustomEvent("vae:map-hover", { detail: { meta: this.data.meta, testIndex: t, label, paint } }));
  }

  hoverAt(px, py, e) {
    const row = this.nearest(px, py);
    if (row === null) { this.hideTip(); return; }
    const t = this.pts.index[row], label = this.pts.labels[row];
    this.canvas.style.cursor = "pointer";
    if (this.hover !== row) {
      this.hover = row;
      this.tipText.textContent = label >= 0 ? `test #${t} · label ${label}` : `test #${t}`;
      this.announceHover(row);
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
    const { classes, colour } = this.data, lit = this.data.highlight ?? null;
    const overlays = this.data.overlays || { paths: [], marks: [] };
    const sig = JSON.stringify([classes, colour.mode, colour.name, colour.range, lit,
                                overlays.paths.map((o) => [o.name, o.color]), overlays.marks.map((o) => [o.name, o.color, o.symbol])]);
    if (this.legendSig === sig) return;
    this.legendSig = sig;
    this.legend.replaceChildren();
    if (colour.mode === "value") {  // a colour bar: low end, ramp, high end
      const bar = document.createElement("span"), ramp = document.createElement("span");
      bar.className = "vae-map-colorbar"; bar.dataset.testid = "vae-map-colorbar";
      ramp.className = "vae-map-colorbar-ramp";
      ramp.style.background = `linear-gradient(to right, ${VIRIDIS.map((c) => `rgb(${c.join(",")})`).join(", ")})`;
      const title = document.createElement("span");
      title.className = "vae-map-legend-title";
      title.textContent = colour.name;
      bar.append(title, fmt(colour.range[0]), ramp, fmt(colour.range[1]));
      this.legend.append(bar);
    }
    for (const o of [...overlays.paths, ...overlays.marks]) {  // what is drawn over the points (not toggled)
      const item = document.createElement("span"), sw = document.createElement("span");
      item.className = "vae-map-legend-item vae-map-overlay-item";
      sw.className = o.symbol ? `vae-map-mark-swatch ${o.symbol}` : "vae-map-line-swatch";
      sw.style.background = o.color;
      item.append(sw, document.createTextNode(o.name));
      this.legend.append(item);
    }
    if (classes.length < 2) return;
    const title = document.createElement("span");
    title.className = "vae-map-legend-title";
    title.textContent = colour.mode === "value" ? "show label" : "label";
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
      if (colour.mode === "label") b.append(sw);
      b.append(document.createTextNode(c.name));
      b.classList.toggle("off", this.hidden.has(c.label));
      if (lit !== null) b.classList.toggle(c.label === lit ? "lit" : "dim", true);
      b.addEventListener("click", () => {
        if (this.hidden.has(c.label)) this.hidden.delete(c.label); else this.hidden.add(c.label);
        b.classList.toggle("off", this.hidden.has(c.label));
        this.schedule();
      });
      this.legend.append(b);
    }
    if (lit !== null) {  // which label "Map points by label" highlights
      const note = document.createElement("span");
      note.className = "vae-map-legend-title"; note.dataset.testid = "vae-map-highlight";
      note.textContent = `· highlighting ${classes.find((c) => c.label === lit)?.name ?? lit}, others faded`;
      this.legend.append(note);
    }
  }

  // --- drawing -------------------------------------------------------------------------------------------
  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  updateColours() {  // per-point RGBA, uploaded only when the colouring or the hidden labels change
    const { classes, colour } = this.data;
    const lit = this.data.highlight ?? null;
    const sig = JSON.stringify([this.data.points_id, this.n, classes, colour, [...this.hidden], lit]);
    if (sig === this.colourSig) return;
    this.colourSig = sig;
    this.colours = pointColours(this.n, this.pts.labels, classes, this.hidden, colour, this.values, 191, lit);
    this.layer.setColours(this.colours);
    let drawn = 0;
    for (let i = 0; i < this.n; i++) if (this.colours[4 * i + 3]) drawn++;
    this.hook.drawn = drawn;
  }

  draw() {
    if (!this.pts || !this.view) return;
    const t0 = performance.now(), dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(this.canvas.clientWidth * dpr)), H = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    for (const c of [this.canvas, this.pointCanvas]) if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    this.updateColours();
    const b = this.box(), t = this.transform(), L = this.layer;
    L.begin(W, H, b, dpr);
    const dense = this.n > this.data.density_above && countInView(this.pts.xy, this.n, this.visibleRange(), this.colours) > this.data.density_above;
    if (dense) {
      const w = Math.max(1, Math.round(b.w / 2)), h = Math.max(1, Math.round(b.h / 2));
      L.drawImage(densityImage(this.pts.xy, this.n, t, b, w, h, this.colours).img, w, h, b, W, H, dpr);
    } else {
      L.drawPoints(t, this.canvas.clientWidth, this.canvas.clientHeight, (this.n > 3000 ? 4 : 6) * dpr);
    }
    this.hook.density = dense;
    this.drawOverlay(W, H, dpr, b);
    const h = this.hook, dt = performance.now() - t0;
    if (!h.draws++) h.firstDrawAt = performance.now();
    if (this.data.debug) { h.drawMs.push(dt); if (h.drawMs.length > 300) h.drawMs.shift(); }
    if (this.data.report_drawn && this.reported !== this.data.points_id) {
      this.reported = this.data.points_id;
      this.setTriggerValue("drawn", this.data.points_id);
    }
  }

  theme() {  // canvas cannot use CSS variables: read Streamlit's theme from them
    const css = getComputedStyle(this.root), get = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const text = get("--st-text-color", "#31333f");
    return { text, ink: text, font: get("--st-font", "sans-serif"),
             grid: get("--st-border-color-light", get("--st-border-color", "rgba(128,128,128,0.25)")) };
  }

  drawOverlay(W, H, dpr, b) {  // axes, ticks and titles, then the hover and selection rings and the star
    const ctx = this.ctx, v = this.visibleRange(), th = (this.th ??= this.theme()), axes = this.data.axes;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = `11px ${th.font}`;
    ctx.fillStyle = th.text; ctx.strokeStyle = th.grid; ctx.lineWidth = 1; ctx.globalAlpha = 0.45;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    ctx.beginPath();
    const xt = ticks(v.x0, v.x1), yt = ticks(v.y0, v.y1, 5);
    for (const x of xt) { const [sx] = this.toScreen([x, v.y0]); ctx.moveTo(sx, b.y); ctx.lineTo(sx, b.y + b.h); }
    for (const y of yt) { const [, sy] = this.toScreen([v.x0, y]); ctx.moveTo(b.x, sy); ctx.lineTo(b.x + b.w, sy); }
    ctx.stroke();
    ctx.globalAlpha = 0.7;
    for (const x of xt) ctx.fillText(fmt(x), this.toScreen([x, v.y0])[0], b.y + b.h + 4);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const y of yt) ctx.fillText(fmt(y), b.x - 5, this.toScreen([v.x0, y])[1]);
    ctx.globalAlpha = 1; ctx.font = `12px ${th.font}`;
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    ctx.fillText(axes[0], b.x + b.w / 2, b.y + b.h + MARGIN.bottom - 2);
    ctx.save(); ctx.translate(12, b.y + b.h / 2); ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle"; ctx.fillText(axes[1], 0, 0); ctx.restore();
    ctx.save();
    ctx.beginPath(); ctx.rect(b.x, b.y, b.w, b.h); ctx.clip();
    this.drawCloud(b, th.ink);
    this.drawOverlays(th);
    if (this.hover !== null) this.ring(this.hover, 7, "rgba(0,0,0,0.55)", 1.5);
    if (this.selectedRow !== null) this.ring(this.selectedRow, 9, th.ink, 2.5);
    const at = this.star && this.toScreen(this.star);
    this.offMap = at && edgeMarker(at[0], at[1], b);
    if (at && !this.offMap) this.drawStar(at, th.ink);
    ctx.restore();
    if (this.offMap) this.drawOffMap(this.offMap, th.ink);
  }

  drawCloud(b, ink) {  // the selected point's q(z|x) samples: small translucent dots, under the ring and star
    const sel = this.selectedRow === null ? null : this.pts.index[this.selectedRow], cloud = CLOUDS.get(this.data.meta);
    if (cloud && cloud.z && !cloud.xy && cloud.points_id === this.data.points_id) {
      cloud.xy = cloud.z.flatMap((z) => project(this.proj, z));  // placed as the star is, once per cloud
    }
    const dots = cloudDots(cloud, this.data.points_id, sel, this.transform(), b), ctx = this.ctx;
    this.hook.cloudDrawn = dots.length;
    if (!dots.length) return;
    ctx.save();  // dark dots with a light rim: visible over points of any colour
    ctx.beginPath();
    for (const [sx, sy] of dots) { ctx.moveTo(sx + 2.4, sy); ctx.arc(sx, sy, 2.4, 0, 2 * Math.PI); }
    ctx.globalAlpha = 0.7; ctx.fillStyle = ink; ctx.fill();
    ctx.globalAlpha = 0.8; ctx.strokeStyle = "#fff"; ctx.lineWidth = 0.8; ctx.stroke();
    ctx.restore();
  }

  // data.overlays: {paths: [{name, color, xy: [[x, y], ...]}], marks: [{name, color, symbol, text, xy: [x, y]}]}
  // in data units: lines (e.g. an interpolation path) and single markers (its ends, an uploaded image's
  // mean), drawn over the points; a mark's text is written beside it.
  drawOverlays(th) {
    const o = this.data.overlays, ctx = this.ctx;
    if (!o) return;
    ctx.save();
    ctx.lineJoin = "round"; ctx.lineWidth = 2.2;
    for (const p of o.paths) {
      ctx.beginPath();
      p.xy.forEach((q, j) => { const [sx, sy] = this.toScreen(q); if (j) ctx.lineTo(sx, sy); else ctx.moveTo(sx, sy); });
      ctx.strokeStyle = "#fff"; ctx.globalAlpha = 0.8; ctx.lineWidth = 4.5; ctx.stroke();  // a halo over any points
      ctx.strokeStyle = p.color; ctx.globalAlpha = 1; ctx.lineWidth = 2.2; ctx.stroke();
    }
    ctx.font = `600 12px ${th.font}`; ctx.textAlign = "left"; ctx.textBaseline = "middle";
    for (const m of o.marks) {
      const [sx, sy] = this.toScreen(m.xy), r = 7;
      ctx.beginPath();
      if (m.symbol === "diamond") { ctx.moveTo(sx, sy - r * 1.25); ctx.lineTo(sx + r, sy); ctx.lineTo(sx, sy + r * 1.25); ctx.lineTo(sx - r, sy); ctx.closePath(); }
      else if (m.symbol === "square") ctx.rect(sx - r * 0.85, sy - r * 0.85, r * 1.7, r * 1.7);
      else ctx.arc(sx, sy, r, 0, 2 * Math.PI);
      ctx.fillStyle = m.color; ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
      if (m.text) {
        ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.85)"; ctx.strokeText(m.text, sx + r + 4, sy);
        ctx.fillStyle = th.ink; ctx.fillText(m.text, sx + r + 4, sy);
      }
    }
    ctx.restore();
  }

  overlayMarks() {
    const o = this.data && this.data.overlays, r = this.canvas.getBoundingClientRect();
    return o ? o.marks.map((m) => { const [sx, sy] = this.toScreen(m.xy); return { name: m.name, text: m.text, x: r.left + sx, y: r.top + sy }; }) : [];
  }

  drawOffMap({ x, y, angle }, ink) {  // the star, small, at the border, and an arrow from it towards the star
    const ctx = this.ctx;
    this.drawStar([x, y], ink, 0.6);
    ctx.save();
    ctx.translate(x, y); ctx.rotate(angle);
    ctx.beginPath(); ctx.moveTo(15, 0); ctx.lineTo(8, -5); ctx.lineTo(8, 5); ctx.closePath();
    ctx.fillStyle = ink; ctx.fill();
    ctx.restore();
  }

  ring(row, radius, color, width) {
    const [sx, sy] = this.toScreen([this.pts.xy[2 * row], this.pts.xy[2 * row + 1]]), ctx = this.ctx;
    ctx.beginPath(); ctx.arc(sx, sy, radius, 0, 2 * Math.PI);
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.stroke();
  }

  drawStar([sx, sy], ink, size = 1) {
    const ctx = this.ctx, R = 11 * size, r = 4.6 * size;
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const a = -Math.PI / 2 + (i * Math.PI) / 5, rad = i % 2 ? r : R;
      ctx.lineTo(sx + rad * Math.cos(a), sy + rad * Math.sin(a));
    }
    ctx.closePath();
    ctx.fillStyle = ink; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
  }

  destroy() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
  }
}

function paintThumb(canvas, thumb) {  // {img, sx, sy, w, h}: one cell of a sprite sheet, pixel for pixel
  canvas.width = thumb.w; canvas.height = thumb.h;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(thumb.img, thumb.sx, thumb.sy, thumb.w, thumb.h, 0, 0, thumb.w, thumb.h);
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-3) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
}

export default function (component) {
  const { parentElement, setTriggerValue } = component;
  const data = component.data instanceof Uint8Array ? unpack(component.data) : null;
  const root = parentElement.querySelector(".vae-map");
  if (!root || !data) return;
  const inst = (root.__vaeMap ??= new LatentMap(root, data.renderer));
  inst.update(data, setTriggerValue);
  return () => inst.destroy();
}
