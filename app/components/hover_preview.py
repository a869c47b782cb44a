"""Image-on-hover for the latent map (st.components.v2).

Plotly hover labels cannot hold images, and Streamlit forwards only selections to Python. This
component listens to `plotly_hover` on the map's own graph div in the page (found by
layout.meta == MAP_META) and draws the hovered point's image from a sprite sheet it received
once, with its label and test index: no server round trip per hover.

    hover_preview(sprite, key="explorer_hover")   # sprite = hover_sprite(images, test_indices)

The sprite (one PNG of all map thumbnails, base64) is sent again only when its id changes.
"""
from __future__ import annotations

import base64
import hashlib
import math

import numpy as np
import streamlit as st

from vae_core.images import png_bytes, tile

MAP_META = "vae-latent-map"  # set as layout.meta on the map figure

_HTML = """
<div class="hp" data-testid="hover-preview">
  <canvas class="hp-canvas" data-testid="hover-preview-canvas" width="1" height="1"></canvas>
  <div class="hp-text" data-testid="hover-preview-text">hover a point to see its image here</div>
</div>
"""

_CSS = """
.hp { display: flex; align-items: center; gap: 10px; min-height: 84px; font-family: var(--st-font, sans-serif); }
.hp-canvas { width: 84px; height: 84px; flex: none; image-rendering: pixelated; border-radius: 6px; background: #000;
             visibility: hidden; }
.hp-text { color: var(--st-text-color, #1f2430); font-size: 0.95em; }
"""

_JS = """
const SHEETS = new Map();  // sprite id -> {img, cols, h, w, cell: Map(test index -> position)}

function findMap(meta) {
  for (const gd of document.querySelectorAll(".js-plotly-plot")) {
    if (gd.layout && gd.layout.meta === meta && typeof gd.on === "function") return gd;
  }
  return null;
}

export default function (component) {
  const { data, parentElement } = component;
  const canvas = parentElement.querySelector(".hp-canvas");
  const text = parentElement.querySelector(".hp-text");
  if (!canvas || !data) return;
  if (data.sprite && !SHEETS.has(data.id)) {
    const img = new Image();
    img.src = "data:image/png;base64," + data.sprite;
    SHEETS.set(data.id, { img, cols: data.cols, h: data.h, w: data.w,
                          cell: new Map(data.index.map((t, i) => [t, i])) });
  }
  const sheet = SHEETS.get(data.id);
  const show = (testIndex, label) => {
    if (!sheet || !sheet.cell.has(testIndex)) return;
    const i = sheet.cell.get(testIndex), r = Math.floor(i / sheet.cols), c = i % sheet.cols;
    canvas.width = sheet.w; canvas.height = sheet.h;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(sheet.img, c * (sheet.w + 1), r * (sheet.h + 1), sheet.w, sheet.h, 0, 0, sheet.w, sheet.h);
    canvas.style.visibility = "visible";
    text.textContent = label >= 0 ? `test #${testIndex} · label ${label}` : `test #${testIndex}`;
    canvas.dataset.testIndex = String(testIndex);
  };
  const attach = () => {  // the chart re-renders on reruns: re-find its graph div, listen once per div
    const gd = findMap(data.meta);
    if (!gd || gd.__vaeHoverId === data.id) return;
    gd.__vaeHoverId = data.id;
    gd.on("plotly_hover", (ev) => {
      // customdata may arrive as a typed-array row (plotly's binary encoding): index it, do not test isArray
      const p = ev && ev.points && ev.points.find((q) => q.customdata != null && q.customdata.length >= 2);
      if (p) show(Number(p.customdata[0]), Number(p.customdata[1]));
    });
  };
  attach();
  clearInterval(parentElement.__vaeHoverTimer);
  parentElement.__vaeHoverTimer = setInterval(attach, 1000);
}
"""

_COMPONENT = st.components.v2.component("vae_hover_preview", html=_HTML, css=_CSS, js=_JS)


def hover_sprite(images: np.ndarray, test_index: np.ndarray) -> dict:
    """Thumbnails (N, H, W[, 3]) in [0, 1] of the map points (in map order) -> sprite payload."""
    n, h, w = images.shape[:3]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * cols, *images.shape[1:]), np.float32)
    grid[:n] = images
    sheet = tile(grid.reshape(rows, cols, *images.shape[1:]), pad=1)
    data = png_bytes(sheet)
    return {"id": hashlib.sha1(data).hexdigest()[:16], "sprite": base64.b64encode(data).decode("ascii"),
            "cols": cols, "h": h, "w": w, "index": [int(i) for i in test_index]}


def hover_preview(sprite: dict, key: str) -> None:
    """Render the preview strip; the sprite goes to the browser only when its id is new."""
    sent_key = f"{key}__sprite_sent"
    send = st.session_state.get(sent_key) != sprite["id"]
    data = {**sprite, "meta": MAP_META}
    if not send:
        data["sprite"] = None
    _COMPONENT(key=key, data=data)
    st.session_state[sent_key] = sprite["id"]
