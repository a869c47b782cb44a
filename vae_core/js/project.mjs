// Map math for the latent map component and the static export (vae_core/export_html.py), run by node in
// tests/test_latent_map_component.py. Mirrors vae_core/projection.py so the star the browser places while a
// slider moves lands where the server would put it:
//   plane  z -> (z1, z2)                     (k <= 2; k = 1 is drawn on the x axis)
//   pca    z -> (z - center) @ components^T  (components: 2 x k)
//   knn    UMAP's transform initialisation: weights exp(-d_j / sigma) over the n nearest means,
//          sigma from smooth_knn_sigma (rho = 0); an exact match takes that point's position.

export const SMOOTH_K_TOLERANCE = 1e-5;  // umap_.SMOOTH_K_TOLERANCE
export const MIN_K_DIST_SCALE = 1e-3;    // umap_.MIN_K_DIST_SCALE
export const SAME_POINT = 1e-4;          // vae_core.projection.SAME_POINT

export function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// little-endian typed arrays from base64 (the payload is written with numpy's "<f4" / "<i4")
export const f32 = (b64) => new Float32Array(b64ToBytes(b64).buffer);
export const i32 = (b64) => new Int32Array(b64ToBytes(b64).buffer);

// sigma with sum_{j>=1} exp(-d_j / sigma) = log2(k), bisection as in projection.smooth_knn_sigma.
// d: ascending distances of the n nearest means (d[0] is the nearest); meanAll: mean of all of d.
export function smoothKnnSigma(d, k, nIter = 64) {
  const target = Math.log2(k);
  let lo = 0, hi = Infinity, mid = 1;
  for (let it = 0; it < nIter; it++) {
    let psum = 0;
    for (let j = 1; j < d.length; j++) psum += d[j] > 0 ? Math.exp(-d[j] / mid) : 1;
    if (Math.abs(psum - target) < SMOOTH_K_TOLERANCE) break;
    if (psum > target) { hi = mid; mid = (lo + hi) / 2; }
    else { lo = mid; mid = hi === Infinity ? mid * 2 : (lo + hi) / 2; }
  }
  let mean = 0;
  for (const v of d) mean += v;
  mean /= d.length;
  return Math.max(mid, MIN_K_DIST_SCALE * mean);
}

// proj: {kind, k, center?, components?, means? (Float32Array N*k), xy? (Float32Array N*2), nNeighbors?}
export function project(proj, z) {
  const k = proj.k;
  if (proj.kind === "plane") return [Number(z[0]) || 0, k >= 2 ? Number(z[1]) || 0 : 0];
  if (proj.kind === "pca") {
    const out = [0, 0];
    for (let a = 0; a < 2; a++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += (z[j] - proj.center[j]) * proj.components[a * k + j];
      out[a] = s;
    }
    return out;
  }
  if (proj.kind !== "knn") throw new Error(`unknown projection ${proj.kind}`);
  const N = proj.means.length / k, n = Math.min(proj.nNeighbors, N);
  // the n smallest squared distances, kept sorted (n = 15 << N: insertion beats a full sort)
  const bestD = new Float64Array(n).fill(Infinity), bestI = new Int32Array(n).fill(-1);
  for (let i = 0; i < N; i++) {
    let d2 = 0;
    for (let j = 0; j < k; j++) { const t = z[j] - proj.means[i * k + j]; d2 += t * t; }
    if (d2 >= bestD[n - 1]) continue;
    let p = n - 1;
    while (p > 0 && bestD[p - 1] > d2) { bestD[p] = bestD[p - 1]; bestI[p] = bestI[p - 1]; p--; }
    bestD[p] = d2; bestI[p] = i;
  }
  const d = Array.from(bestD, Math.sqrt);
  if (d[0] < SAME_POINT) return [proj.xy[2 * bestI[0]], proj.xy[2 * bestI[0] + 1]];
  const sigma = smoothKnnSigma(d, n);
  let wx = 0, wy = 0, ws = 0;
  for (let j = 0; j < n; j++) {
    const w = d[j] > 0 ? Math.exp(-d[j] / sigma) : 1;
    wx += w * proj.xy[2 * bestI[j]]; wy += w * proj.xy[2 * bestI[j] + 1]; ws += w;
  }
  return [wx / ws, wy / ws];
}

// "nice" axis ticks (1, 2, 5 x 10^e) covering [lo, hi] with about `count` steps
export function ticks(lo, hi, count = 6) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, e = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * e).find((s) => s >= raw) ?? 10 * e;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}
