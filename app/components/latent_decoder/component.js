// Latent sliders + canvas, decoded in the browser on every slider `input` (one decode per
// animation frame), z sent to Python on `change` (release). Appended to decode.mjs by
// latent_decoder.py, so parseDecoder/decode/toRGBA are in scope.
//
// Streamlit calls the default export again, on the same DOM, whenever `data` changes; the
// instance lives on the root element. Parsed weights live in a page-wide cache keyed by the
// payload id, so Python sends them once per session and they are parsed once per page.

const NETS = (globalThis.__vaeDecoderNets ??= new Map());  // payload id -> parsed net
const RING = 600;  // timings kept for measurement

function push(arr, v) {
  arr.push(v);
  if (arr.length > RING) arr.shift();
}

class LatentDecoder {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.status = root.querySelector(".vae-dec-status");
    this.sliders = root.querySelector(".vae-dec-sliders");
    this.net = null; this.image = null;
    this.z = null; this.inputs = []; this.values = [];
    this.rev = null; this.requested = null;
    this.raf = 0; this.pendingSince = null;
    // Measurement hook for tests/benchmarks (window.__vaeDecoder is the last updated instance).
    this.hook = { frames: 0, lastDecodeMs: NaN, decodeMs: [], inputToPaintMs: [], weightsReceived: 0,
                  weightsParsed: 0, parseMs: NaN, sent: 0, updates: 0, zFromPython: 0, z: [],
                  key: null, firstDataAt: NaN, firstFrameAt: NaN };  // *At: ms since navigation start
    this.sliders.addEventListener("input", (e) => this.onInput(e));
    this.sliders.addEventListener("change", () => this.onChange());
  }

  update(data, setTriggerValue) {
    this.setTriggerValue = setTriggerValue;
    this.hook.key = data.key;
    if (!this.hook.updates++) this.hook.firstDataAt = performance.now();
    globalThis.__vaeDecoder = this.hook;
    (globalThis.__vaeDecoders ??= {})[data.key] = this.hook;
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
    const rebuilt = net !== this.net || this.inputs.length !== net.latentDim;
    if (rebuilt) this.useNet(net);
    this.setLabels(data.labels, data.inactive);
    const scale = Math.min(data.height / net.H, (3 * data.height) / net.W);  // a 1xD strip stays <= 3 heights wide
    this.canvas.style.height = `${Math.round(scale * net.H)}px`;
    this.canvas.style.width = `${Math.round(scale * net.W)}px`;
    // Python bumps z_rev only for a new z (map click, buttons), not when it echoes our own
    // release back, which can arrive while another slider is being dragged.
    if (rebuilt || data.z_rev !== this.rev) this.setZ(data.z);
    this.rev = data.z_rev;
    this.schedule();
  }

  useNet(net) {
    this.net = net;
    this.canvas.width = net.W; this.canvas.height = net.H;
    this.image = this.ctx.createImageData(net.W, net.H);
    this.z = new Float64Array(net.latentDim);
    this.sliders.replaceChildren();
    this.inputs = []; this.values = []; this.labels = [];
    for (let i = 0; i < net.latentDim; i++) {
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
    this.hook.zFromPython++;
    for (let i = 0; i < this.z.length; i++) {
      this.z[i] = Number(z[i]) || 0;
      this.inputs[i].value = String(this.z[i]);  // the slider clamps to [-3, 3]; z keeps the exact value
      this.values[i].textContent = this.z[i].toFixed(2);
    }
  }

  onInput(e) {
    const i = Number(e.target.dataset.dim);
    if (!this.net || !(i >= 0)) return;
    this.z[i] = parseFloat(e.target.value);
    this.values[i].textContent = this.z[i].toFixed(2);
    if (this.pendingSince === null) this.pendingSince = performance.now();
    this.schedule();
  }

  onChange() {
    if (!this.net) return;
    this.hook.sent++;
    this.setTriggerValue("z", Array.from(this.z));
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
    const t1 = performance.now(), h = this.hook;
    if (!h.frames++) h.firstFrameAt = t1;
    h.lastDecodeMs = t1 - t0;
    push(h.decodeMs, h.lastDecodeMs);
    if (this.pendingSince !== null) { push(h.inputToPaintMs, t1 - this.pendingSince); this.pendingSince = null; }
    h.z = Array.from(this.z);
    this.status.textContent = `decoded in your browser · ${h.lastDecodeMs.toFixed(1)} ms`;
  }

  destroy() {
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
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
    inst.status.textContent = `cannot decode in the browser: ${err.message}`;
    throw err;
  }
  return () => inst.destroy();
}
