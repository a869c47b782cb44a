// The latent map's point layer, appended after points.mjs by app/components/latent_map.py.
//
// GLPoints draws with WebGL 2 (else WebGL 1): positions and colours are uploaded once per point set
// (colours again when the colouring or a hidden label changes); pan and zoom only change the
// transform uniforms. CanvasPoints draws the same on the CPU into a 2-D canvas: the fallback when the
// browser has no WebGL or only a software one, or when the page asks for it (data.renderer).
// Both draw the density image (points.mjs densityImage) instead of points when asked.

const VERTEX = `
attribute vec2 a_xy;
attribute vec4 a_rgba;
uniform vec4 u_t;      // ax, bx, ay, by: data -> CSS px
uniform vec2 u_size;   // canvas size in CSS px
uniform float u_px;    // point diameter in device px
varying vec4 v_rgba;
void main() {
  vec2 s = vec2(a_xy.x * u_t.x + u_t.y, a_xy.y * u_t.z + u_t.w);
  gl_Position = vec4(s.x * 2.0 / u_size.x - 1.0, 1.0 - s.y * 2.0 / u_size.y, 0.0, 1.0);
  gl_PointSize = a_rgba.a > 0.0 ? u_px : 0.0;
  v_rgba = a_rgba;
}`;

const FRAGMENT = `
precision mediump float;
varying vec4 v_rgba;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  float r = dot(d, d);
  if (r > 0.25) discard;
  gl_FragColor = vec4(v_rgba.rgb * v_rgba.a, v_rgba.a);  // premultiplied alpha
}`;

const QUAD_VERTEX = `
attribute vec2 a_xy;
varying vec2 v_uv;
void main() { v_uv = vec2(a_xy.x, 1.0 - a_xy.y); gl_Position = vec4(a_xy * 2.0 - 1.0, 0.0, 1.0); }`;

const QUAD_FRAGMENT = `
precision mediump float;
uniform sampler2D u_img;
varying vec2 v_uv;
void main() { vec4 c = texture2D(u_img, v_uv); gl_FragColor = vec4(c.rgb * c.a, c.a); }`;

function compile(gl, vs, fs) {
  const prog = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    gl.attachShader(prog, s);
  }
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  return prog;
}

class GLPoints {
  static create(canvas) {  // null when neither WebGL 2 nor WebGL 1 is available
    const opts = { antialias: false, alpha: true, premultipliedAlpha: true, preserveDrawingBuffer: false };
    const gl = canvas.getContext("webgl2", opts) || canvas.getContext("webgl", opts);
    if (!gl) return null;
    try { return new GLPoints(canvas, gl); } catch (e) { console.warn("latent map: WebGL failed, using the canvas", e); return null; }
  }

  constructor(canvas, gl) {
    this.canvas = canvas; this.gl = gl;
    this.kind = typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext ? "webgl2" : "webgl";
    this.prog = compile(gl, VERTEX, FRAGMENT);
    this.loc = { xy: gl.getAttribLocation(this.prog, "a_xy"), rgba: gl.getAttribLocation(this.prog, "a_rgba"),
                 t: gl.getUniformLocation(this.prog, "u_t"), size: gl.getUniformLocation(this.prog, "u_size"),
                 px: gl.getUniformLocation(this.prog, "u_px") };
    this.xyBuf = gl.createBuffer(); this.rgbaBuf = gl.createBuffer();
    this.quad = compile(gl, QUAD_VERTEX, QUAD_FRAGMENT);
    this.quadBuf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.quadBuf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    this.tex = gl.createTexture();
    this.n = 0;
  }

  setPoints(xy, n) {  // once per point set
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.xyBuf);
    gl.bufferData(gl.ARRAY_BUFFER, xy.subarray(0, 2 * n), gl.STATIC_DRAW);
    this.n = n;
  }

  setColours(rgba) {  // when the colouring or the hidden labels change
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.rgbaBuf);
    gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.STATIC_DRAW);
  }

  begin(W, H, b, dpr) {
    const gl = this.gl;
    gl.viewport(0, 0, W, H);
    gl.clearColor(0, 0, 0, 0);
    gl.disable(gl.SCISSOR_TEST);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.SCISSOR_TEST);  // the plot box, in device px from the bottom left
    gl.scissor(Math.round(b.x * dpr), Math.round(H - (b.y + b.h) * dpr), Math.round(b.w * dpr), Math.round(b.h * dpr));
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
  }

  drawPoints(t, cssW, cssH, diameterPx) {
    const gl = this.gl, L = this.loc;
    gl.useProgram(this.prog);
    gl.uniform4f(L.t, t.ax, t.bx, t.ay, t.by);
    gl.uniform2f(L.size, cssW, cssH);
    gl.uniform1f(L.px, diameterPx);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.xyBuf);
    gl.enableVertexAttribArray(L.xy);
    gl.vertexAttribPointer(L.xy, 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.rgbaBuf);
    gl.enableVertexAttribArray(L.rgba);
    gl.vertexAttribPointer(L.rgba, 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.drawArrays(gl.POINTS, 0, this.n);
  }

  drawImage(img, w, h, b, W, H, dpr) {  // RGBA w x h stretched over the plot box b
    const gl = this.gl;
    gl.viewport(Math.round(b.x * dpr), Math.round(H - (b.y + b.h) * dpr), Math.round(b.w * dpr), Math.round(b.h * dpr));
    gl.useProgram(this.quad);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(img.buffer));
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
    gl.uniform1i(gl.getUniformLocation(this.quad, "u_img"), 0);
    const a = gl.getAttribLocation(this.quad, "a_xy");
    gl.bindBuffer(gl.ARRAY_BUFFER, this.quadBuf);
    gl.enableVertexAttribArray(a);
    gl.vertexAttribPointer(a, 2, gl.FLOAT, false, 0, 0);
    gl.disableVertexAttribArray(this.loc.rgba);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    gl.viewport(0, 0, W, H);
  }
}

// The CPU path: each point is a disc of pixels written straight into one ImageData, which is then put
// on a 2-D canvas (no per-point path or fill call). Used when there is no WebGL, when WebGL is a
// software rasteriser (SwiftShader, llvmpipe: there a point costs microseconds of primitive setup,
// a pixel write nanoseconds), or when the page asks for it.
class CanvasPoints {
  constructor(canvas) {
    this.canvas = canvas; this.ctx = canvas.getContext("2d"); this.kind = "canvas";
    this.xy = null; this.c32 = null; this.n = 0; this.img = null;
    this.scratch = document.createElement("canvas");
  }

  setPoints(xy, n) { this.xy = xy; this.n = n; }
  setColours(rgba) { this.c32 = new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.length / 4); }  // RGBA bytes = ImageData's order

  begin(W, H, b, dpr) {
    if (!this.img || this.img.width !== W || this.img.height !== H) {
      this.img = new ImageData(W, H); this.u32 = new Uint32Array(this.img.data.buffer);
    } else {
      this.u32.fill(0);
    }
    this.W = W; this.H = H; this.box = b; this.dpr = dpr; this.image = null;
  }

  disc(D) {  // pixel offsets (row-major, stride W) of a disc D device px across
    if (this.discFor === `${D}:${this.W}`) return this.discOff;
    const off = [], c = D / 2;
    for (let y = 0; y < D; y++) for (let x = 0; x < D; x++) if ((x + 0.5 - c) ** 2 + (y + 0.5 - c) ** 2 <= c * c) off.push(y * this.W + x);
    this.discFor = `${D}:${this.W}`;
    return (this.discOff = Int32Array.from(off));
  }

  drawPoints(t, cssW, cssH, diameterPx) {
    const D = Math.max(1, Math.round(diameterPx)), off = this.disc(D), u = this.u32, cols = this.c32, xy = this.xy;
    const d = this.dpr, b = this.box, W = this.W, h = D / 2;
    const x0 = Math.ceil(b.x * d), x1 = Math.floor((b.x + b.w) * d) - D, y0 = Math.ceil(b.y * d), y1 = Math.floor((b.y + b.h) * d) - D;
    const ax = t.ax * d, bx = t.bx * d - h, ay = t.ay * d, by = t.by * d - h;
    for (let i = 0; i < this.n; i++) {
      const c = cols[i];
      if (!(c >>> 24)) continue;
      const px = Math.round(ax * xy[2 * i] + bx), py = Math.round(ay * xy[2 * i + 1] + by);
      if (px < x0 || px > x1 || py < y0 || py > y1) continue;
      const base = py * W + px;
      for (let j = 0; j < off.length; j++) u[base + off[j]] = c;
    }
    this.ctx.putImageData(this.img, 0, 0);
  }

  drawImage(img, w, h, b) {
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    this.scratch.width = w; this.scratch.height = h;
    this.scratch.getContext("2d").putImageData(new ImageData(img, w, h), 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.drawImage(this.scratch, b.x, b.y, b.w, b.h);
  }
}

// What WebGL this browser has, probed once per page on a throwaway canvas (a canvas keeps the first
// kind of context it gives): {gl, software}. A software rasteriser (SwiftShader, llvmpipe) draws a
// point slower than CanvasPoints writes its pixels.
function probeGL() {
  return (globalThis.__vaeGLProbe ??= (() => {
    const c = document.createElement("canvas"), gl = c.getContext("webgl2") || c.getContext("webgl");
    const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
    const name = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
    const lose = gl && gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();  // browsers cap live contexts: free this one now
    return { gl: !!gl, software: /swiftshader|llvmpipe|software|softpipe/i.test(name) };
  })());
}

// The layer for this canvas. want: "auto" (WebGL on a GPU; the CPU path where WebGL is missing or
// software), "webgl" (WebGL whenever present) or "canvas" (the CPU path).
function pointLayer(canvas, want) {
  if (want === "canvas") return new CanvasPoints(canvas);
  if (want !== "webgl" && (!probeGL().gl || probeGL().software)) return new CanvasPoints(canvas);
  return GLPoints.create(canvas) || new CanvasPoints(canvas);
}
