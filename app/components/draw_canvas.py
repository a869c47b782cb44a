"""A small drawing canvas (st.components.v2): draw a digit with the mouse, finger or pen.

Black ink on white paper, like pen on paper; the upload preprocessing inverts and centres it.
After each stroke the canvas is sent to Python as a PNG data URL (component state `png`, which
persists across reruns); "Clear" sets it back to None.

    png = draw_canvas(key="upload_canvas")   # bytes of a PNG, or None while the canvas is empty
"""

from __future__ import annotations

import base64

import streamlit as st

_HTML = """
<div class="dc" data-testid="draw-canvas">
  <canvas class="dc-canvas" data-testid="draw-canvas-surface"></canvas>
  <div class="dc-bar"><button class="dc-clear" type="button" data-testid="draw-canvas-clear">Clear</button>
  <span class="dc-hint">draw one digit, large and centred</span></div>
</div>
"""

_CSS = """
.dc { display: inline-flex; flex-direction: column; gap: 6px; font-family: var(--st-font, sans-serif); }
.dc-canvas { background: #fff; border: 2px solid var(--st-primary-color, #4e79a7); border-radius: 8px;
             touch-action: none; cursor: crosshair; }
.dc-bar { display: flex; align-items: center; gap: 10px; }
.dc-clear { padding: 4px 14px; border-radius: 6px; border: 1px solid #c8ccd4; background: #fff; cursor: pointer; }
.dc-hint { color: #6b7280; font-size: 0.85em; }
"""

_JS = """
export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector(".dc-canvas");
  if (!canvas || !data) return;
  const size = data.size, stroke = data.stroke;
  if (canvas.width !== size) {
    canvas.width = size; canvas.height = size;
    canvas.style.width = size + "px"; canvas.style.height = size + "px";
  }
  const ctx = canvas.getContext("2d");
  const blank = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size); };
  if (!canvas.dataset.ready) {
    canvas.dataset.ready = "1";
    blank();
    let drawing = false, last = null;
    const pos = (e) => { const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * size / r.width, (e.clientY - r.top) * size / r.height]; };
    const line = (a, b) => { ctx.strokeStyle = "#000"; ctx.lineWidth = stroke; ctx.lineCap = "round";
      ctx.lineJoin = "round"; ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke(); };
    canvas.addEventListener("pointerdown", (e) => { drawing = true; last = pos(e);
      canvas.setPointerCapture(e.pointerId); line(last, last); });
    canvas.addEventListener("pointermove", (e) => { if (!drawing) return; const p = pos(e); line(last, p); last = p; });
    const end = () => { if (!drawing) return; drawing = false; setStateValue("png", canvas.toDataURL("image/png")); };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    parentElement.querySelector(".dc-clear").addEventListener("click", () => { blank(); setStateValue("png", null); });
  }
}
"""

_COMPONENT = st.components.v2.component("vae_draw_canvas", html=_HTML, css=_CSS, js=_JS)
_PREFIX = "data:image/png;base64,"


def decode_data_url(url) -> bytes | None:
    """A PNG data URL from the canvas -> PNG bytes; anything else -> None."""
    if not isinstance(url, str) or not url.startswith(_PREFIX):
        return None
    try:
        return base64.b64decode(url[len(_PREFIX) :], validate=True)
    except ValueError:
        return None


def draw_canvas(key: str, size: int = 280, stroke: int = 22) -> bytes | None:
    """Render the canvas; returns the current drawing as PNG bytes, or None when empty/cleared."""
    result = _COMPONENT(
        key=key, data={"size": int(size), "stroke": int(stroke)}, default={"png": None}, on_png_change=lambda: None
    )
    return decode_data_url(result.get("png") if hasattr(result, "get") else None)
