// The VAE decoder in plain JS, shared by the Streamlit component, the static export
// (vae_core/export_html.py) and tests/test_browser_decoder.py (node). No DOM use here.
// Payload formats: vae_core/browser.py (vae-mlp-decoder/1, vae-conv-decoder/1).

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function base64ToBytes(s) {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// IEEE half (binary16) bits -> number
function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;                       // subnormal
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// base64 of little-endian float32 ("<f4", the default) or float16 ("<f2") bytes -> Float32Array
export function base64ToFloat32(s, dtype = "<f4") {
  const bytes = base64ToBytes(s);
  if (dtype === "<f2") {
    if (bytes.length % 2 !== 0) throw new Error("float16 data length is not a multiple of 2");
    const dv = new DataView(bytes.buffer), out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
    return out;
  }
  if (dtype !== "<f4") throw new Error(`unknown weight dtype ${dtype}`);
  if (bytes.length % 4 !== 0) throw new Error("float32 data length is not a multiple of 4");
  if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer);
  const dv = new DataView(bytes.buffer), out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
  return out;
}

// A Linear layer; W arrives (out, in) as nn.Linear keeps it and is stored transposed, (in, out), so
// decode() adds one contiguous column per nonzero input (after a ReLU about half are zero).
function parseLinear(l, i, dtype) {
  const W = base64ToFloat32(l.weight, dtype), b = base64ToFloat32(l.bias, dtype);
  if (W.length !== l.in * l.out || b.length !== l.out) {
    throw new Error(`layer ${i}: expected ${l.out}x${l.in} weights, got ${W.length} values`);
  }
  const Wt = new Float32Array(W.length);
  for (let o = 0; o < l.out; o++) for (let j = 0; j < l.in; j++) Wt[j * l.out + o] = W[o * l.in + j];
  return { nIn: l.in, nOut: l.out, relu: !!l.relu, Wt, b, h: new Float64Array(l.out) };
}

// A ConvTranspose2d on a (cIn, hIn, wIn) input. W arrives (cIn, cOut, k, k) as PyTorch keeps it and is
// stored as (k, k, cIn, cOut); activations between deconvs are kept channel-last, (H, W, C), so the
// innermost loop runs over contiguous output channels.
function parseDeconv(l, i, [cIn, hIn, wIn], dtype) {
  const W = base64ToFloat32(l.weight, dtype), b = base64ToFloat32(l.bias, dtype);
  const { kernel: k, stride: s, padding: p } = l, cOut = l.out;
  if (l.in !== cIn || W.length !== cIn * cOut * k * k || b.length !== cOut) {
    throw new Error(`deconv ${i}: expected ${l.in}x${cOut}x${k}x${k} weights on ${cIn} channels, got ${W.length} values`);
  }
  const Wr = new Float32Array(W.length);
  for (let ci = 0; ci < cIn; ci++) for (let co = 0; co < cOut; co++) for (let ky = 0; ky < k; ky++) {
    for (let kx = 0; kx < k; kx++) Wr[((ky * k + kx) * cIn + ci) * cOut + co] = W[((ci * cOut + co) * k + ky) * k + kx];
  }
  const hOut = (hIn - 1) * s - 2 * p + k, wOut = (wIn - 1) * s - 2 * p + k;  // PyTorch's output size
  return { cIn, hIn, wIn, cOut, hOut, wOut, k, s, p, relu: !!l.relu, Wr, b,
           h: new Float64Array(cOut * hOut * wOut) };
}

// Parse a payload once: typed arrays plus scratch buffers reused by every decode.
export function parseDecoder(payload) {
  const fmt = payload && payload.format;
  if (fmt !== "vae-mlp-decoder/1" && fmt !== "vae-conv-decoder/1") {
    throw new Error(`unknown decoder format ${fmt}`);
  }
  if (!Object.hasOwn(OUTPUT_TRANSFORMS, payload.output)) {
    throw new Error(`unknown output transform ${payload.output}`);
  }
  const dtype = payload.dtype || "<f4";
  const layers = payload.layers.map((l, i) => parseLinear(l, i, dtype));
  let deconvs = [], nOut = layers[layers.length - 1].nOut;
  if (fmt === "vae-conv-decoder/1") {
    let shape = payload.unflatten;  // the last Linear's output viewed as (C, H, W)
    if (shape[0] * shape[1] * shape[2] !== nOut) throw new Error(`cannot view ${nOut} values as ${shape}`);
    deconvs = payload.deconvs.map((l, i) => {
      const d = parseDeconv(l, i, shape, dtype);
      shape = [d.cOut, d.hOut, d.wOut];
      return d;
    });
    nOut = shape[0] * shape[1] * shape[2];
  }
  const shape = payload.input_shape;
  let C, H, W;
  if (shape.length === 3) [C, H, W] = shape;
  else {  // flat (D,): a square grey image when D is a square, else a 1-pixel strip
    const D = shape[0], s = Math.round(Math.sqrt(D));
    [C, H, W] = s * s === D ? [1, s, s] : [1, 1, D];
  }
  if (C * H * W !== nOut) throw new Error(`the decoder gives ${nOut} values for input_shape ${shape}`);
  return {
    id: payload.id, latentDim: payload.latent_dim, output: payload.output, layers, deconvs,
    unflatten: payload.unflatten, hwc: deconvs.length ? new Float64Array(layers[layers.length - 1].nOut) : null,
    C, H, W, lo: payload.value_range[0], hi: payload.value_range[1],
    mean: new Float32Array(nOut),
  };
}

// E[x|z] for one output pre-activation a, keyed by the likelihood's browser_transform, which the
// payload's "output" names (vae_core/likelihoods.py: the registry; no likelihood names here).
export const OUTPUT_TRANSFORMS = {
  sigmoid: (a) => 1 / (1 + Math.exp(-a)),
  // The continuous Bernoulli's mean, as vae_core.likelihoods.continuous_bernoulli_mean:
  // lam/(2lam-1) + 1/(2 artanh(1-2lam)) with lam = sigmoid(a) equals 1/(1-e^-a) - 1/a, exact at any a;
  // for |a| < 0.1 (the float64 cut-off) the series 1/2 + a/12 - a^3/720 + a^5/30240 - a^7/1209600
  // avoids the 0/0 at a = 0.
  "continuous-bernoulli-mean": (a) => {
    if (Math.abs(a) < 0.1) {
      const a2 = a * a;
      return 0.5 + a * (1 / 12 + a2 * (-1 / 720 + a2 * (1 / 30240 - a2 / 1209600)));
    }
    return -1 / Math.expm1(-a) - 1 / a;
  },
  identity: (a) => a,  // Gaussian mean
};

// ConvTranspose2d, gathered: out[oy, ox, co] = b[co] + sum over (ky, kx, ci) of x[iy, ix, ci] W[ci, co, ky, kx]
// where oy = iy*s - p + ky and ox = ix*s - p + kx. x and out are channel-last (H, W, C).
function deconv(L, x) {
  const { cIn, hIn, wIn, cOut, hOut, wOut, k, s, p, Wr, b, h } = L;
  for (let oy = 0; oy < hOut; oy++) {
    for (let ox = 0; ox < wOut; ox++) {
      const o = (oy * wOut + ox) * cOut;
      for (let co = 0; co < cOut; co++) h[o + co] = b[co];
      for (let ky = 0; ky < k; ky++) {
        const ty = oy + p - ky, iy = ty / s;
        if (ty < 0 || ty % s !== 0 || iy >= hIn) continue;
        for (let kx = 0; kx < k; kx++) {
          const tx = ox + p - kx, ix = tx / s;
          if (tx < 0 || tx % s !== 0 || ix >= wIn) continue;
          const xi = (iy * wIn + ix) * cIn, wk = (ky * k + kx) * cIn;
          for (let ci = 0; ci < cIn; ci++) {
            const v = x[xi + ci];
            if (v === 0) continue;  // most inputs after a ReLU
            const w = (wk + ci) * cOut;
            for (let co = 0; co < cOut; co++) h[o + co] += v * Wr[w + co];
          }
        }
      }
    }
  }
  if (L.relu) for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0;
  return h;
}

// (C, H, W) -> (H, W, C) into out
function toChannelLast(x, C, H, W, out) {
  for (let c = 0; c < C; c++) for (let i = 0; i < H * W; i++) out[i * C + c] = x[c * H * W + i];
  return out;
}

// z (array-like, latentDim) -> net.mean, Float32Array (C*H*W) in (C, H, W) order.
export function decode(net, z) {
  let x = z;
  for (const L of net.layers) {  // h = b + sum_i x[i] W[:, i], then the ReLU
    const { nIn, nOut, Wt, b, h } = L;
    h.set(b);
    for (let i = 0; i < nIn; i++) {
      const v = x[i];
      if (v === 0) continue;
      const col = i * nOut;
      for (let o = 0; o < nOut; o++) h[o] += v * Wt[col + o];
    }
    if (L.relu) for (let o = 0; o < nOut; o++) if (h[o] < 0) h[o] = 0;
    x = h;
  }
  const out = net.mean, outputMean = OUTPUT_TRANSFORMS[net.output];
  if (!net.deconvs.length) {
    for (let j = 0; j < out.length; j++) out[j] = outputMean(x[j]);
    return out;
  }
  const [c0, h0, w0] = net.unflatten;
  x = toChannelLast(x, c0, h0, w0, net.hwc);
  for (const L of net.deconvs) x = deconv(L, x);
  const { C, H, W } = net, n = H * W;  // channel-last back to (C, H, W)
  for (let c = 0; c < C; c++) for (let i = 0; i < n; i++) out[c * n + i] = outputMean(x[i * C + c]);
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
