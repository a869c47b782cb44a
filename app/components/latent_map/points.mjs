// Point-set machinery of the latent map, shared by its WebGL and canvas renderers and by
// tests/test_latent_map_points.py (run by node): the unpacking of the component's binary data, a
// uniform grid for picking, per-point colours
// (by label, or by a value through a colour ramp) and the binned density image drawn when too many
// points are in view to draw one by one.
//
// A view transform maps data to CSS px inside the canvas: sx = ax * x + bx, sy = ay * y + by
// (ay < 0: data y grows upwards).

// latent_map.py pack_data: [uint32 LE n][n bytes of header JSON][padding to 8][blobs, 8-aligned].
// -> the header, with blob(name, TypedArray) giving a view of one blob (copied once, to align it).
export function unpack(bytes) {
  const buf = bytes.slice().buffer, n = new DataView(buf).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n))), base = Math.ceil((4 + n) / 8) * 8;
  header.blob = (name, T) => { const [off, len] = header.blobs[name]; return new T(buf, base + off, len / T.BYTES_PER_ELEMENT); };
  return header;
}

// viridis at 17 stops (matplotlib's, at 0, 1/16, ..., 1): the value ramp and the colour bar
export const VIRIDIS = [[68, 1, 84], [72, 24, 106], [71, 45, 123], [66, 64, 134], [59, 82, 139], [51, 99, 141],
                        [44, 114, 142], [38, 130, 142], [33, 145, 140], [31, 160, 136], [40, 174, 128], [63, 188, 115],
                        [94, 201, 98], [132, 212, 75], [173, 220, 48], [216, 226, 25], [253, 231, 37]];

export function ramp(t, stops = VIRIDIS) {  // t in [0, 1] (clamped; NaN -> grey) -> [r, g, b]
  if (!Number.isFinite(t)) return [160, 160, 160];
  const u = Math.min(1, Math.max(0, t)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(u)), f = u - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
}

export function hexRgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

// A point of another label than the highlighted one: light grey, nearly transparent (still drawn and
// picked, so the highlighted label stands out against the shape of the whole map).
export const DIMMED = [170, 170, 170, 38];

// RGBA per point (Uint8Array, 4n). colour: {mode: "label"} or {mode: "value", range: [lo, hi]}
// with values (Float32Array). A hidden label gets alpha 0 (not drawn, not picked). highlight: a label
// (the others get DIMMED), or null for none.
export function pointColours(n, labels, classes, hidden, colour, values, alpha = 191, highlight = null) {
  const out = new Uint8Array(4 * n), byLabel = new Map(classes.map((c) => [c.label, hexRgb(c.color)]));
  const byValue = colour && colour.mode === "value" && values;
  const [lo, hi] = byValue ? colour.range : [0, 1], span = hi > lo ? hi - lo : 1;
  const dim = highlight !== null && highlight !== undefined;
  for (let i = 0; i < n; i++) {
    const hide = hidden.has(labels[i]);
    if (dim && !hide && labels[i] !== highlight) { out.set(DIMMED, 4 * i); continue; }
    const rgb = byValue ? ramp((values[i] - lo) / span) : byLabel.get(labels[i]) || [128, 128, 128];
    out[4 * i] = rgb[0]; out[4 * i + 1] = rgb[1]; out[4 * i + 2] = rgb[2]; out[4 * i + 3] = hide ? 0 : alpha;
  }
  return out;
}

// Uniform grid over the points' bounding box, about `perCell` points a cell: ids sorted by cell
// (counting sort), start[c]..start[c + 1] the ids in cell c.
export function buildGrid(xy, n, perCell = 4) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  if (!(n > 0)) { x0 = y0 = 0; x1 = y1 = 1; }
  const side = Math.max(1, Math.min(2048, Math.round(Math.sqrt(n / perCell))));
  const cw = (x1 - x0) / side || 1, ch = (y1 - y0) / side || 1;
  const cell = new Int32Array(n), start = new Int32Array(side * side + 1), ids = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const cx = Math.min(side - 1, Math.floor((xy[2 * i] - x0) / cw)), cy = Math.min(side - 1, Math.floor((xy[2 * i + 1] - y0) / ch));
    cell[i] = cy * side + cx;
    start[cell[i] + 1]++;
  }
  for (let c = 0; c < side * side; c++) start[c + 1] += start[c];
  const fill = start.slice(0, side * side);
  for (let i = 0; i < n; i++) ids[fill[cell[i]]++] = i;
  return { x0, y0, cw, ch, side, start, ids };
}

// The point nearest to screen (px, py) within hitPx CSS px, among those with visible(i); null if none.
// Ties go to the lower id (the one drawn first), so the answer does not depend on the grid.
export function nearest(grid, xy, t, px, py, hitPx, visible) {
  const x = (px - t.bx) / t.ax, y = (py - t.by) / t.ay, rx = hitPx / Math.abs(t.ax), ry = hitPx / Math.abs(t.ay);
  const { x0, y0, cw, ch, side, start, ids } = grid;
  const cx0 = Math.max(0, Math.floor((x - rx - x0) / cw)), cx1 = Math.min(side - 1, Math.floor((x + rx - x0) / cw));
  const cy0 = Math.max(0, Math.floor((y - ry - y0) / ch)), cy1 = Math.min(side - 1, Math.floor((y + ry - y0) / ch));
  let best = null, bestD = hitPx * hitPx;
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * side + cx;
      for (let s = start[c]; s < start[c + 1]; s++) {
        const i = ids[s];
        if (!visible(i)) continue;
        const dx = t.ax * xy[2 * i] + t.bx - px, dy = t.ay * xy[2 * i + 1] + t.by - py, d = dx * dx + dy * dy;
        if (d < bestD || (d === bestD && best !== null && i < best)) { bestD = d; best = i; }
      }
    }
  }
  return best;
}

// Ids of up to `count` visible points nearest to point `row` (itself first): whose hover images to
// fetch together, so that moving the mouse around a neighbourhood needs no new request. Rings of
// cells around the point's cell, until no unvisited cell can hold a nearer point than the count-th.
export function neighbours(grid, xy, row, count, visible) {
  const { x0, y0, cw, ch, side, start, ids } = grid, x = xy[2 * row], y = xy[2 * row + 1];
  const cx = Math.min(side - 1, Math.floor((x - x0) / cw)), cy = Math.min(side - 1, Math.floor((y - y0) / ch));
  const d = (i) => (xy[2 * i] - x) ** 2 + (xy[2 * i + 1] - y) ** 2;
  let found = [];
  for (let r = 0; r < side; r++) {
    for (let gy = cy - r; gy <= cy + r; gy++) {
      for (let gx = cx - r; gx <= cx + r; gx++) {
        if (gx < 0 || gy < 0 || gx >= side || gy >= side || (Math.abs(gx - cx) !== r && Math.abs(gy - cy) !== r)) continue;
        const c = gy * side + gx;
        for (let s = start[c]; s < start[c + 1]; s++) if (visible(ids[s])) found.push(ids[s]);
      }
    }
    if (found.length >= count) {
      found = found.sort((a, b) => d(a) - d(b) || a - b).slice(0, count);
      if (r * Math.min(cw, ch) >= Math.sqrt(d(found[count - 1]))) break;  // ring r + 1 is at least this far
    }
  }
  return found.sort((a, b) => d(a) - d(b) || a - b).slice(0, count);
}

// Visible points inside the data rectangle v = {x0, x1, y0, y1}.
export function countInView(xy, n, v, colours) {
  let c = 0;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x >= v.x0 && x <= v.x1 && y >= v.y0 && y <= v.y1 && colours[4 * i + 3]) c++;
  }
  return c;
}

// The density layer: visible points binned into a w x h image covering CSS px box b under transform t,
// RGBA (Uint8ClampedArray), colour by log(1 + count) on the ramp, empty bins transparent.
export function densityImage(xy, n, t, b, w, h, colours) {
  const counts = new Float32Array(w * h), sx = w / b.w, sy = h / b.h;
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (!colours[4 * i + 3]) continue;
    const gx = Math.floor((t.ax * xy[2 * i] + t.bx - b.x) * sx), gy = Math.floor((t.ay * xy[2 * i + 1] + t.by - b.y) * sy);
    if (gx < 0 || gy < 0 || gx >= w || gy >= h) continue;
    const c = ++counts[gy * w + gx];
    if (c > max) max = c;
  }
  const img = new Uint8ClampedArray(4 * w * h), scale = 1 / Math.log1p(max || 1);
  for (let j = 0; j < w * h; j++) {
    if (!counts[j]) continue;
    const rgb = ramp(0.15 + 0.85 * Math.log1p(counts[j]) * scale);
    img[4 * j] = rgb[0]; img[4 * j + 1] = rgb[1]; img[4 * j + 2] = rgb[2]; img[4 * j + 3] = 230;
  }
  return { img, max };
}

// The view transform of data rectangle v = {x0, x1, y0, y1} into the plot box b (CSS px), v centred.
// equal: one scale for both axes (1 data unit as many px across as up, as a PCA or latent plane needs
// to be read), the rectangle widened in x or y to the box's shape; else each axis fills the box.
export function viewTransform(v, b, equal) {
  let ax = b.w / (v.x1 - v.x0), ay = b.h / (v.y1 - v.y0);
  if (equal) ax = ay = Math.min(ax, ay);
  const cx = (v.x0 + v.x1) / 2, cy = (v.y0 + v.y1) / 2;
  return { ax, bx: b.x + b.w / 2 - cx * ax, ay: -ay, by: b.y + b.h / 2 + cy * ay };
}

// A point at screen (sx, sy) outside the plot box b is marked on the box's border: where the line
// from the box's centre to it crosses the border pulled in by `inset` px, with the angle (radians,
// screen y down) pointing at it. null when the point is inside the box.
export function edgeMarker(sx, sy, b, inset = 14) {
  if (sx >= b.x && sx <= b.x + b.w && sy >= b.y && sy <= b.y + b.h) return null;
  const cx = b.x + b.w / 2, cy = b.y + b.h / 2, dx = sx - cx, dy = sy - cy;
  const hw = Math.max(1, b.w / 2 - inset), hh = Math.max(1, b.h / 2 - inset);
  const s = Math.min(dx ? hw / Math.abs(dx) : Infinity, dy ? hh / Math.abs(dy) : Infinity);
  return { x: cx + dx * s, y: cy + dy * s, angle: Math.atan2(dy, dx) };
}

// The selected point's posterior samples (latent_map.py map_cloud: {points_id, testIndex, z}, with
// xy: their map positions, flat [x0, y0, x1, y1, ...], added by the map) as screen dots
// [[sx, sy], ...] inside the plot box b under transform t: none unless the cloud is of this point set
// and of the point selected now (a click moves the ring at once; its cloud follows with the panels).
export function cloudDots(cloud, pointsId, selectedIndex, t, b) {
  if (!cloud || !cloud.xy || cloud.points_id !== pointsId || cloud.testIndex !== selectedIndex) return [];
  const out = [];
  for (let i = 0; i + 1 < cloud.xy.length; i += 2) {
    const sx = t.ax * cloud.xy[i] + t.bx, sy = t.ay * cloud.xy[i + 1] + t.by;
    if (sx >= b.x && sx <= b.x + b.w && sy >= b.y && sy <= b.y + b.h) out.push([sx, sy]);
  }
  return out;
}
