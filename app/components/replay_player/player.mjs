// The replay player's arithmetic, apart from the DOM: run by the component and, under node, by
// tests/test_replay_player.py. Depends on ticks (vae_core/js/project.mjs), which comes first in the
// component's module.

// Snapshot e's map positions from the uint16 blob (E, P, 2) over box {x0, x1, y0, y1}
// (replay_player.quantize): x = x0 + q / 65535 (x1 - x0), likewise y. -> Float32Array (2P).
export function snapshotXY(q, e, nPoints, box) {
  const out = new Float32Array(2 * nPoints), base = 2 * nPoints * e;
  const sx = (box.x1 - box.x0) / 65535, sy = (box.y1 - box.y0) / 65535;
  for (let p = 0; p < nPoints; p++) {
    out[2 * p] = box.x0 + q[base + 2 * p] * sx;
    out[2 * p + 1] = box.y0 + q[base + 2 * p + 1] * sy;
  }
  return out;
}

// Snapshot i's tile in the sheet (pixels): tile i at row i // cols, column i % cols, 1 px gaps.
export function tileRect(i, sheet) {
  const col = i % sheet.cols, row = Math.floor(i / sheet.cols);
  return { sx: col * (sheet.tile_w + 1), sy: row * (sheet.tile_h + 1), w: sheet.tile_w, h: sheet.tile_h };
}

// The snapshot after i while playing: i + 1, or null at the last one (playing stops there).
export function nextIndex(i, n) {
  return i + 1 < n ? i + 1 : null;
}

// Where Play starts: from i, or from the first snapshot when i is the last (play it again).
export function playFrom(i, n) {
  return i >= n - 1 ? 0 : i;
}

// Latent dimensions alive at a KL row (k values): KL >= the collapse threshold.
export function aliveCount(klRow, threshold) {
  let n = 0;
  for (const v of klRow) if (v >= threshold) n++;
  return n;
}

// Ticks of a log10 axis from 10^a to 10^b (a < b, exponents): the integer powers of ten inside.
export function logTicks(a, b) {
  const out = [];
  for (let e = Math.ceil(a - 1e-9); e <= b + 1e-9; e++) out.push(e);
  return out;
}

// The KL axis: exponents [lo, hi] with lo = -4 (1e-4 nats: the floor bars are drawn at) and hi just
// above the largest KL of any dimension at any epoch (at least 10x the collapse threshold).
export function klRange(klPerDim, threshold) {
  let m = threshold * 10;
  for (const v of klPerDim) if (v > m) m = v;
  return [-4, Math.log10(m) + 0.1];
}

// [lo, hi] of several series together, padded by 5 % (the ELBO chart's y range).
export function seriesRange(...series) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

// The snapshot nearest to epoch value x (epochs ascending): the ELBO chart's hover and click.
export function nearestEpoch(epochs, x) {
  let best = 0;
  for (let i = 1; i < epochs.length; i++) if (Math.abs(epochs[i] - x) < Math.abs(epochs[best] - x)) best = i;
  return best;
}

// A number as the page prints it: two decimals ("-95.31"), the minus a real minus sign.
export function nats(v) {
  return v.toFixed(2).replace("-", "\u2212");
}

// A power of ten on the log KL axis: "0.001" ... "10" as decimals, smaller ones as "1e−4".
export function powerText(v) {
  const e = Math.round(Math.log10(v));
  return e >= -3 ? String(Number((10 ** e).toPrecision(1))) : `1e\u2212${-e}`;
}

export function tickText(v) {
  const a = Math.abs(v);
  const s = a !== 0 && (a >= 1e4 || a < 1e-3) ? v.toExponential(1) : String(Number(v.toPrecision(6)));
  return s.replace("-", "\u2212");
}

// The readout under the controls for snapshot i of replay h (the header): epoch, ELBO terms, alive dims.
export function readout(h, i, klRow) {
  return `epoch ${h.epochs[i]} of ${h.epochs[h.epochs.length - 1]} \u00b7 ELBO ${nats(h.elbo[i])} \u00b7 ` +
    `E_q log p(x|z) ${nats(h.recon[i])} \u00b7 KL ${nats(h.kl[i])} \u00b7 ` +
    `${aliveCount(klRow, h.collapsed)} of ${h.k} dimensions alive`;
}
