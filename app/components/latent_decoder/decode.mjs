// MLP decoder in plain JS, shared by the Streamlit component and tests/test_browser_decoder.py (node).
// Payload format: vae_core/browser.py (vae-mlp-decoder/1). No DOM use here.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// base64 of little-endian float32 bytes -> Float32Array
export function base64ToFloat32(s) {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (bytes.length % 4 !== 0) throw new Error("float32 data length is not a multiple of 4");
  if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer);
  const dv = new DataView(bytes.buffer), out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

// Parse a payload once: typed arrays plus scratch buffers reused by every decode.
export function parseDecoder(payload) {
  if (!payload || payload.format !== "vae-mlp-decoder/1") {
    throw new Error(`unknown decoder format ${payload && payload.format}`);
  }
  const layers = payload.layers.map((l, i) => {
    const W = base64ToFloat32(l.weight), b = base64ToFloat32(l.bias);
    if (W.length !== l.in * l.out || b.length !== l.out) {
      throw new Error(`layer ${i}: expected ${l.out}x${l.in} weights, got ${W.length} values`);
    }
    return { nIn: l.in, nOut: l.out, relu: !!l.relu, W, b, h: new Float64Array(l.out) };
  });
  const shape = payload.input_shape;
  let C, H, W;
  if (shape.length === 3) [C, H, W] = shape;
  else {  // flat (D,): a square grey image when D is a square, else a 1-pixel strip
    const D = shape[0], s = Math.round(Math.sqrt(D));
    [C, H, W] = s * s === D ? [1, s, s] : [1, 1, D];
  }
  return {
    id: payload.id, latentDim: payload.latent_dim, output: payload.output, layers,
    C, H, W, lo: payload.value_range[0], hi: payload.value_range[1],
    mean: new Float32Array(layers[layers.length - 1].nOut),
  };
}

// E[x|z] for one output pre-activation a.
function outputMean(kind, a) {
  if (kind === "sigmoid") return 1 / (1 + Math.exp(-a));
  if (kind === "continuous-bernoulli-mean") {
    // lam/(2lam-1) + 1/(2 artanh(1-2lam)) with lam = sigmoid(a) equals 1/(1-e^-a) - 1/a;
    // its Taylor series 1/2 + a/12 - a^3/720 avoids 0/0 near a = 0 (lam = 1/2).
    if (Math.abs(a) < 1e-2) return 0.5 + a / 12 - (a * a * a) / 720;
    return -1 / Math.expm1(-a) - 1 / a;
  }
  return a;  // identity (Gaussian mean)
}

// z (array-like, latentDim) -> net.mean, Float32Array (C*H*W) in (C, H, W) order.
export function decode(net, z) {
  let x = z;
  for (const L of net.layers) {
    const { nIn, nOut, W, b, h } = L;
    for (let o = 0; o < nOut; o++) {  // h[o] = b[o] + sum_i W[o, i] x[i]
      let s = b[o];
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) s += W[row + i] * x[i];
      h[o] = L.relu && s < 0 ? 0 : s;
    }
    x = h;
  }
  const out = net.mean;
  for (let j = 0; j < out.length; j++) out[j] = outputMean(net.output, x[j]);
  return out;
}

// net.mean -> RGBA bytes (H*W*4): grey for C=1, RGB for C>=3 (a 4th channel is ignored).
export function toRGBA(net, mean, rgba) {
  const { C, H, W, lo, hi } = net, n = H * W, k = 255 / (hi - lo);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (mean[(C >= 3 ? c : 0) * n + p] - lo) * k;
      rgba[4 * p + c] = v < 0 ? 0 : v > 255 ? 255 : v;  // Uint8ClampedArray rounds
    }
    rgba[4 * p + 3] = 255;
  }
  return rgba;
}
