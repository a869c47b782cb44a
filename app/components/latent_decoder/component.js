// Latent sliders + canvas (the DOM half of the decoder component). latent_decoder.py puts decode.mjs
// (parseDecoder, decode, toRGBA) and z_sync.mjs (ZSync, Pacer, Z_EVENTS, sameZ) before this file in
// one module. Two modes, the same sliders:
//   browser (data.weights_id): the decoder (MLP or conv) runs here on every slider `input` (one decode
//     per animation frame); z goes to Python (trigger `z`) on `change` (release).
//   server (data.image): Python decodes; z goes to Python on release and, paced by a Pacer, while
//     dragging, so the image follows a drag at the server's pace. Each answer carries z and its pixels.
// What moves the sliders and what Python accepts: z_sync.py (the protocol) and z_sync.mjs.
//
// Streamlit calls the default export again, on the same DOM, whenever `data` changes; the instance
// lives on the root element. Parsed weights live in a page-wide cache keyed by the payload id, so
// Python sends them once per session and they are parsed once per page.
// data.debug: expose measurement hooks (window.__vaeDecoder, the last updated instance, and
// window.__vaeDecoders[key]) for the browser tests and bench/.

const NETS = (globalThis.__vaeDecoderNets ??= new Map());  // payload id -> parsed net
const RING = 600;  // timings kept per hook array

function push(arr, v) {
  arr.push(v);
  if (arr.length > RING) arr.shift();
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

// Measurement hook (only with data.debug). frames: images painted; z: the z of the painted image;
// sent: reports to Python; roundTripMs: server mode, request -> its image painted; *At: ms since
// navigation start.
function newHook() {
  return { mode: null, frames: 0, lastDecodeMs: NaN, decodeMs: [], inputToPaintMs: [], weightsReceived: 0,
           weightsParsed: 0, parseMs: NaN, sent: 0, updates: 0, zFromPython: 0, zFromMap: 0, z: [],
           roundTripMs: [], lost: 0, key: null, firstDataAt: NaN, firstFrameAt: NaN };
}

class LatentDecoder {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.status = root.querySelector(".vae-dec-status");
    this.sliders = root.querySelector(".vae-dec-sliders");
    this.mode = null; this.shape = null;  // "browser" | "server"; [k, H, W]
    this.net = null; this.image = null; this.painted = null;
    this.sync = new ZSync(); this.pacer = null;
    this.inputs = []; this.values = []; this.labels = [];
    this.requested = null; this.raf = 0; this.timer = 0;
    this.hook = null; this.pendingSince = null;
    this.sliders.addEventListener("input", (e) => this.onInput(e));
    this.sliders.addEventListener("change", () => this.onChange());
    // Streamlit may call the cleanup between updates, so the listener removes itself once the
    // element has left the page instead
    this.onSelect = (e) => {
      if (!this.root.isConnected) { window.removeEventListener(Z_EVENTS.select, this.onSelect); return; }
      this.fromMap(e.detail && e.detail.z);
    };
    window.addEventListener(Z_EVENTS.select, this.onSelect);
  }

  update(data, setTriggerValue) {
    this.setTriggerValue = setTriggerValue;
    if (data.debug && !this.hook) this.hook = newHook();
    const h = this.hook;
    if (h) {
      h.key = data.key;
      if (!h.updates++) h.firstDataAt = performance.now();
      globalThis.__vaeDecoder = h;
      (globalThis.__vaeDecoders ??= {})[data.key] = h;
    }
    if (data.image) return this.updateServer(data);
    if (data.weights) {
      if (h) h.weightsReceived++;
      if (!NETS.has(data.weights.id)) {
        const t0 = performance.now();
        NETS.set(data.weights.id, parseDecoder(data.weights));
        if (h) { h.parseMs = performance.now() - t0; h.weightsParsed++; }
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
    if (rebuilt) { this.setMode("browser", net.latentDim, net.H, net.W, data); this.net = net; }
    this.common(data, rebuilt);
    this.schedule();
  }

  updateServer(data) {
    const img = data.image, k = data.z.length;
    const rebuilt = this.mode !== "server" || !sameZ(this.shape, [k, img.height, img.width]);
    if (rebuilt) this.setMode("server", k, img.height, img.width, data);
    this.pacer.previewMs = data.preview_ms;  // null: decode on release only
    this.common(data, rebuilt);
    const rt = this.pacer.answered(data, performance.now());
    if (rt !== null && this.hook) push(this.hook.roundTripMs, rt);
    if (img.pixels !== this.painted || !sameZ(data.z, this.paintedZ)) {
      imageToRGBA(img, this.image.data);
      this.ctx.putImageData(this.image, 0, 0);
      this.painted = img.pixels;
      this.paintDone(data.z);
      const last = this.hook && this.hook.roundTripMs.at(-1);
      this.status.textContent = "decoded on the server" + (last == null ? "" : ` · ${last.toFixed(0)} ms round trip`);
    }
    this.pump();
  }

  // labels, image size and Python's {z, rev}: the same in both modes
  common(data, rebuilt) {
    this.setLabels(data.labels, data.inactive);
    const [H, W] = [this.shape[1], this.shape[2]];
    const scale = Math.min(data.height / H, (3 * data.height) / W);  // a 1xD strip stays <= 3 heights wide
    this.canvas.style.height = `${Math.round(scale * H)}px`;
    this.canvas.style.width = `${Math.round(scale * W)}px`;
    if (this.sync.receive(data, rebuilt)) {
      if (this.hook) this.hook.zFromPython++;
      this.showZ();
    }
  }

  setMode(mode, k, H, W, data) {
    this.mode = mode;
    if (this.hook) this.hook.mode = mode;
    this.shape = [k, H, W];
    this.net = null; this.painted = null; this.paintedZ = null;
    this.pacer = mode === "server" ? new Pacer(data.preview_ms) : null;
    this.canvas.width = W; this.canvas.height = H;
    this.image = this.ctx.createImageData(W, H);
    this.sliders.replaceChildren();
    this.inputs = []; this.values = []; this.labels = [];
    const [lo, hi] = data.range;
    for (let i = 0; i < k; i++) {
      const row = document.createElement("label");
      row.className = "vae-dec-row";
      row.dataset.testid = `vae-decoder-row-${i}`;
      const name = document.createElement("span");
      name.className = "vae-dec-label";
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: String(lo), max: String(hi), step: String(data.step), value: "0" });
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
      const text = labels[i] ?? `z${i + 1}`;
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

  // the sliders show sync.z (a set from Python or the map); whatever waited to be sent is dropped
  showZ() {
    const z = this.sync.z;
    for (let i = 0; i < z.length; i++) {
      this.inputs[i].value = String(z[i]);  // the slider rounds to its step; z keeps the exact value
      this.values[i].textContent = z[i].toFixed(2);
    }
    if (this.pacer) this.pacer.drop();
    this.announce();
  }

  // a map click: move the sliders now; Python follows with the same z (and, in server mode, its image)
  fromMap(z) {
    if (!this.sync.local(z)) return;
    if (this.hook) this.hook.zFromMap++;
    this.showZ();
    if (this.mode === "browser") this.schedule();
  }

  announce() {
    window.dispatchEvent(new CustomEvent(Z_EVENTS.z, { detail: { z: Array.from(this.sync.z) } }));
  }

  onInput(e) {
    const i = Number(e.target.dataset.dim);
    if (!this.sync.z || !(i >= 0)) return;
    this.sync.edit(i, parseFloat(e.target.value));
    this.values[i].textContent = this.sync.z[i].toFixed(2);
    if (this.hook && this.pendingSince === null) this.pendingSince = performance.now();
    this.announce();
    if (this.mode === "browser") this.schedule();
    else this.request(false);
  }

  onChange() {
    if (this.mode === "browser" && this.net) this.send(this.sync.report());
    else if (this.mode === "server") this.request(true);
  }

  send(msg) {
    if (this.hook) this.hook.sent++;
    this.setTriggerValue("z", msg);
  }

  // server mode: the Pacer says when the current z goes to Python
  request(release) {
    this.pacer.want(this.sync.report(), release);
    this.pump();
  }

  pump() {
    clearTimeout(this.timer);
    const next = this.pacer.next(performance.now());
    if (this.hook) this.hook.lost = this.pacer.lost;
    if (!next) return;
    if (next.send) this.send(next.send);
    else this.timer = setTimeout(() => this.pump(), next.wait);
  }

  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  draw() {
    if (!this.net) return;
    const t0 = performance.now();
    const mean = decode(this.net, this.sync.z);
    toRGBA(this.net, mean, this.image.data);
    this.ctx.putImageData(this.image, 0, 0);
    const ms = performance.now() - t0;
    if (this.hook) { this.hook.lastDecodeMs = ms; push(this.hook.decodeMs, ms); }
    this.paintDone(this.sync.z);
    this.status.textContent = `decoded in your browser · ${ms.toFixed(1)} ms`;
  }

  paintDone(z) {
    this.paintedZ = Array.from(z);
    const h = this.hook;
    if (!h) return;
    const t1 = performance.now();
    h.z = this.paintedZ;
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
