// Latent sliders + canvas. Appended to decode.mjs by latent_decoder.py, so parseDecoder/decode/toRGBA
// are in scope. Two modes, the same sliders:
//   browser (data.weights_id): the decoder (MLP or conv) runs here on every slider `input` (one decode per
//     animation frame); z goes to Python on `change` (release).
//   server (data.image): Python decodes; z goes to Python (trigger `z`) on release and, while
//     dragging, at most every data.preview_ms ms with at most one request in flight, so the image
//     follows a drag at the server's pace. Each answer carries z and its decoded pixels.
//
// Streamlit calls the default export again, on the same DOM, whenever `data` changes; the
// instance lives on the root element. Parsed weights live in a page-wide cache keyed by the
// payload id, so Python sends them once per session and they are parsed once per page.
// Window events: `vae:select` {z} (a map click) moves the sliders at once; `vae:z` {z} is sent
// whenever the sliders move, so the map's star follows them.

const NETS = (globalThis.__vaeDecoderNets ??= new Map());  // payload id -> parsed net
const RING = 600;  // timings kept for measurement
const LOST_MS = 3000;  // a server request unanswered this long is given up (e.g. its rerun was cut short)

function push(arr, v) {
  arr.push(v);
  if (arr.length > RING) arr.shift();
}

function sameZ(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (Number(a[i]) !== Number(b[i])) return false;
  return true;
}

// {height, width, channels, pixels: base64 of uint8 (H, W, C) row-major} -> RGBA bytes
function imageToRGBA(img, rgba) {
  const bin = atob(img.pixels), C = img.channels, n = img.height * img.width;
  if (bin.length !== n * C) throw new Error(`image: expected ${n * C} bytes, got ${bin.length}`);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) rgba[4 * p + c] = bin.charCodeAt(p * C + (C >= 3 ? c : 0));
    rgba[4 * p + 3] = 255;
  }
  return rgba;
}

class LatentDecoder {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.status = root.querySelector(".vae-dec-status");
    this.sliders = root.querySelector(".vae-dec-sliders");
    this.mode = null; this.shape = null;  // "browser" | "server"; [k, H, W]
    this.net = null; this.image = null;
    this.z = null; this.inputs = []; this.values = [];
    this.rev = null; this.requested = null;
    this.raf = 0; this.pendingSince = null;
    // server mode: the request in flight {z, t}, the z still to send, when the last one went
    this.inflight = null; this.want = null; this.lastSent = null; this.lastSentAt = -Infinity;
    this.timer = 0; this.painted = null;
    // Measurement hook for tests/benchmarks (window.__vaeDecoder is the last updated instance).
    // frames: images painted (both modes); z: the z of the painted image; sent: z sent to Python;
    // roundTripMs: server mode, request sent -> its image painted.
    this.hook = { mode: null, frames: 0, lastDecodeMs: NaN, decodeMs: [], inputToPaintMs: [], weightsReceived: 0,
                  weightsParsed: 0, parseMs: NaN, sent: 0, updates: 0, zFromPython: 0, zFromMap: 0, z: [],
                  roundTripMs: [], lost: 0, key: null, firstDataAt: NaN, firstFrameAt: NaN };  // *At: ms since navigation start
    this.sliders.addEventListener("input", (e) => this.onInput(e));
    this.sliders.addEventListener("change", () => this.onChange());
    // Streamlit may call the cleanup between updates, so the listener removes itself once the
    // element has left the page instead
    this.onSelect = (e) => {
      if (!this.root.isConnected) { window.removeEventListener("vae:select", this.onSelect); return; }
      this.fromMap(e.detail && e.detail.z);
    };
    window.addEventListener("vae:select", this.onSelect);
  }

  update(data, setTriggerValue) {
    this.setTriggerValue = setTriggerValue;
    this.hook.key = data.key;
    if (!this.hook.updates++) this.hook.firstDataAt = performance.now();
    globalThis.__vaeDecoder = this.hook;
    (globalThis.__vaeDecoders ??= {})[data.key] = this.hook;
    if (data.image) return this.updateServer(data);
    if (data.weights) {
      this.hook.weightsReceived++;
      if (!NETS.has(data.weights.id)) {
        const t0 = performance.now();
        NETS.set(data.weights.id, parseDecoder(data.weights));
        this.hook.parseMs = performance.now() - t0;
        this.hook.weightsParsed++;
        while (NETS.size > 4) NETS.delete(NETS.keys().next().value);  // oldest first
      }
    }
    const net = NETS.get(data.weights_id);
    if (!net) {  // e.g. the page-wide cache was lost: ask Python to send the weights again
      this.status.textContent = "loading decoder…";
      if (this.requested !== data.weights_id) {
        this.requested = data.weights_id;
        setTriggerValue("need_weights", data.weights_id);
      }
      return;
    }
    this.requested = null;
    const rebuilt = this.mode !== "browser" || net !== this.net || this.inputs.length !== net.latentDim;
    if (rebuilt) { this.setMode("browser", net.latentDim, net.H, net.W); this.net = net; }
    this.common(data, rebuilt);
    this.schedule();
  }

  updateServer(data) {
    const img = data.image, k = data.z.length;
    const rebuilt = this.mode !== "server" || !sameZ(this.shape, [k, img.height, img.width]);
    if (rebuilt) this.setMode("server", k, img.height, img.width);
    this.previewMs = data.preview_ms;  // null: decode on release only
    this.common(data, rebuilt);
    // the answer to our request (or any z from Python): frees the slot for the next request
    if (this.inflight && sameZ(data.z, this.inflight.z)) {
      push(this.hook.roundTripMs, performance.now() - this.inflight.t);
      this.inflight = null;
    }
    if (img.pixels !== this.painted || !sameZ(data.z, this.hook.z)) {
      imageToRGBA(img, this.image.data);
      this.ctx.putImageData(this.image, 0, 0);
      this.painted = img.pixels;
      this.hook.z = Array.from(data.z);
      this.paintDone();
      const rt = this.hook.roundTripMs.at(-1);
      this.status.textContent = "decoded on the server" + (rt === undefined ? "" : ` · ${rt.toFixed(0)} ms round trip`);
    }
    this.pump();
  }

  // labels, image size and z from Python: the same in both modes
  common(data, rebuilt) {
    this.setLabels(data.labels, data.inactive);
    const [H, W] = [this.shape[1], this.shape[2]];
    const scale = Math.min(data.height / H, (3 * data.height) / W);  // a 1xD strip stays <= 3 heights wide
    this.canvas.style.height = `${Math.round(scale * H)}px`;
    this.canvas.style.width = `${Math.round(scale * W)}px`;
    // Python bumps z_rev only for a new z (map click, buttons), not when it echoes our own
    // release back, which can arrive while another slider is being dragged.
    if (rebuilt || data.z_rev !== this.rev) { this.hook.zFromPython++; this.setZ(data.z); }
    this.rev = data.z_rev;
  }

  setMode(mode, k, H, W) {
    this.mode = this.hook.mode = mode;
    this.shape = [k, H, W];
    this.net = null; this.painted = null;
    this.inflight = null; this.want = null; this.lastSent = null;
    this.canvas.width = W; this.canvas.height = H;
    this.image = this.ctx.createImageData(W, H);
    this.z = new Float64Array(k);
    this.sliders.replaceChildren();
    this.inputs = []; this.values = []; this.labels = [];
    for (let i = 0; i < k; i++) {
      const row = document.createElement("label");
      row.className = "vae-dec-row";
      row.dataset.testid = `vae-decoder-row-${i}`;
      const name = document.createElement("span");
      name.className = "vae-dec-label";
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: "-3", max: "3", step: "0.01", value: "0" });
      input.dataset.dim = String(i);
      input.dataset.testid = `vae-decoder-slider-${i}`;
      const value = document.createElement("span");
      value.className = "vae-dec-value";
      value.dataset.testid = `vae-decoder-value-${i}`;
      row.append(name, input, value);
      this.sliders.append(row);
      this.inputs.push(input); this.values.push(value); this.labels.push(name);
    }
  }

  setLabels(labels, inactive) {
    this.labels.forEach((el, i) => {
      const text = labels[i] ?? `z${i}`;
      if (el.textContent !== text) {
        el.textContent = text; el.title = text;
        this.inputs[i].setAttribute("aria-label", text);
      }
      const off = !!inactive[i];
      const row = el.parentElement;
      row.classList.toggle("inactive", off);
      row.dataset.inactive = String(off);
      row.title = off ? "inactive unit (KL ≈ 0): the decoder mostly ignores it" : "";
    });
  }

  setZ(z) {
    for (let i = 0; i < this.z.length; i++) {
      this.z[i] = Number(z[i]) || 0;
      this.inputs[i].value = String(this.z[i]);  // the slider clamps to [-3, 3]; z keeps the exact value
      this.values[i].textContent = this.z[i].toFixed(2);
    }
    this.want = null;  // a z from Python or the map replaces any z still waiting to be sent
    this.announce();
  }

  // a map click: move the sliders now; Python follows with the same z (and, in server mode, its image)
  fromMap(z) {
    if (!this.z || !Array.isArray(z) || z.length !== this.z.length) return;
    this.hook.zFromMap++;
    this.setZ(z);
    if (this.mode === "browser") this.schedule();
  }

  announce() {
    window.dispatchEvent(new CustomEvent("vae:z", { detail: { z: Array.from(this.z) } }));
  }

  onInput(e) {
    const i = Number(e.target.dataset.dim);
    if (!this.z || !(i >= 0)) return;
    this.z[i] = parseFloat(e.target.value);
    this.values[i].textContent = this.z[i].toFixed(2);
    if (this.pendingSince === null) this.pendingSince = performance.now();
    this.announce();
    if (this.mode === "browser") this.schedule();
    else if (this.previewMs != null) this.request(false);
  }

  onChange() {
    if (this.mode === "browser" && this.net) {
      this.hook.sent++;
      this.setTriggerValue("z", Array.from(this.z));
    } else if (this.mode === "server") {
      this.request(true);
    }
  }

  // server mode: ask Python for the current z. A release goes as soon as nothing is in flight;
  // a drag preview also waits until previewMs have passed since the last request.
  request(release) {
    this.want = sameZ(this.z, this.lastSent) ? null : { z: Array.from(this.z), release };
    this.pump();
  }

  pump() {
    clearTimeout(this.timer);
    if (!this.want) return;
    const t = performance.now();
    if (this.inflight) {  // updateServer() pumps again when the answer comes
      const age = t - this.inflight.t;
      if (age < LOST_MS) { this.timer = setTimeout(() => this.pump(), LOST_MS - age); return; }
      this.hook.lost++;
      this.inflight = null;
    }
    const wait = this.want.release ? 0 : this.lastSentAt + this.previewMs - t;
    if (wait > 0) { this.timer = setTimeout(() => this.pump(), wait); return; }
    const { z } = this.want;
    this.want = null;
    this.inflight = { z, t };
    this.lastSent = z; this.lastSentAt = t;
    this.hook.sent++;
    this.setTriggerValue("z", z);
  }

  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  draw() {
    if (!this.net) return;
    const t0 = performance.now();
    const mean = decode(this.net, this.z);
    toRGBA(this.net, mean, this.image.data);
    this.ctx.putImageData(this.image, 0, 0);
    this.hook.lastDecodeMs = performance.now() - t0;
    push(this.hook.decodeMs, this.hook.lastDecodeMs);
    this.hook.z = Array.from(this.z);
    this.paintDone();
    this.status.textContent = `decoded in your browser · ${this.hook.lastDecodeMs.toFixed(1)} ms`;
  }

  paintDone() {
    const t1 = performance.now(), h = this.hook;
    if (!h.frames++) h.firstFrameAt = t1;
    if (this.pendingSince !== null) { push(h.inputToPaintMs, t1 - this.pendingSince); this.pendingSince = null; }
  }

  destroy() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    clearTimeout(this.timer);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".vae-dec");
  if (!root || !data) return;
  const inst = (root.__vaeDecoder ??= new LatentDecoder(root));
  try {
    inst.update(data, setTriggerValue);
  } catch (err) {
    inst.status.textContent = `cannot show the decoder: ${err.message}`;
    throw err;
  }
  return () => inst.destroy();
}
