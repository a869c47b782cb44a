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

function parseLinear(l, i, dtype) {
  const W = base64ToFloat32(l.weight, dtype), b = base64ToFloat32(l.bias, dtype);
  if (W.length !== l.in * l.out || b.length !== l.out) {
    throw new Error(`layer ${i}: expected ${l.out}x${l.in} weights, got ${W.length} values`);
  }
  return { nIn: l.in, nOut: l.out, relu: !!l.relu, W, b, h: new Float64Array(l.out) };
}

// A ConvTranspose2d on a (cIn, hIn, wIn) input; W is (cIn, cOut, k, k) as PyTorch keeps it.
function parseDeconv(l, i, [cIn, hIn, wIn], dtype) {
  const W = base64ToFloat32(l.weight, dtype), b = base64ToFloat32(l.bias, dtype);
  const { kernel: k, stride: s, padding: p } = l;
  if (l.in !== cIn || W.length !== l.in * l.out * k * k || b.length !== l.out) {
    throw new Error(`deconv ${i}: expected ${l.in}x${l.out}x${k}x${k} weights on ${cIn} channels, got ${W.length} values`);
  }
  const hOut = (hIn - 1) * s - 2 * p + k, wOut = (wIn - 1) * s - 2 * p + k;  // PyTorch's output size
  return { cIn, hIn, wIn, cOut: l.out, hOut, wOut, k, s, p, relu: !!l.relu, W, b,
           h: new Float64Array(l.out * hOut * wOut) };
}

// Parse a payload once: typed arrays plus scratch buffers reused by every decode.
export function parseDecoder(payload) {
  const fmt = payload && payload.format;
  if (fmt !== "vae-mlp-decoder/1" && fmt !== "vae-conv-decoder/1") {
    throw new Error(`unknown decoder format ${fmt}`);
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
    C, H, W, lo: payload.value_range[0], hi: payload.value_range[1],
    mean: new Float32Array(nOut),
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

// out[co, iy*s - p + ky, ix*s - p + kx] += x[ci, iy, ix] * W[ci, co, ky, kx], plus b[co]:
// ConvTranspose2d as the scatter of each input pixel through the kernel.
function deconv(L, x) {
  const { cIn, hIn, wIn, cOut, hOut, wOut, k, s, p, W, b, h } = L, nIn = hIn * wIn, nOut = hOut * wOut;
  for (let co = 0; co < cOut; co++) h.fill(b[co], co * nOut, (co + 1) * nOut);
  for (let ci = 0; ci < cIn; ci++) {
    for (let co = 0; co < cOut; co++) {
      const base = co * nOut;
      for (let ky = 0; ky < k; ky++) {
        for (let kx = 0; kx < k; kx++) {
          const w = W[((ci * cOut + co) * k + ky) * k + kx];
          for (let iy = 0; iy < hIn; iy++) {
            const oy = iy * s - p + ky;
            if (oy < 0 || oy >= hOut) continue;
            const row = base + oy * wOut, xin = ci * nIn + iy * wIn;
            for (let ix = 0; ix < wIn; ix++) {
              const ox = ix * s - p + kx;
              if (ox >= 0 && ox < wOut) h[row + ox] += x[xin + ix] * w;
            }
          }
        }
      }
    }
  }
  if (L.relu) for (let i = 0; i < h.length; i++) if (h[i] < 0) h[i] = 0;
  return h;
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
  for (const L of net.deconvs) x = deconv(L, x);
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
