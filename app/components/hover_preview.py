"""Image-on-hover for the latent map (st.components.v2): the preview strip under the map.

It registers the map's thumbnails (one PNG sprite sheet, base64) page-wide under the map's name
(globalThis.__vaeSprites) and shows the point named by the map's `vae:map-hover` window events with the
painter they carry: the map looks the hovered point up in that sheet (or fetches its image on demand)
and paints both its own tooltip and this strip. No server round trip per hover.

    hover_preview(sprite, key="explorer_hover")   # sprite = hover_sprite(images, test_indices)

The sprite is sent again only when its id changes.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np
import streamlit as st

from app.components.latent_map import MAP_META
from vae_core.images import sprite_sheet

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
// Sprite sheets, page-wide, by map name: the map looks the hovered point up in them.
const SHEETS = (globalThis.__vaeSprites ??= new Map());

export default function (component) {
  const { data, parentElement } = component;
  const canvas = parentElement.querySelector(".hp-canvas");
  const text = parentElement.querySelector(".hp-text");
  if (!canvas || !data) return;
  const have = SHEETS.get(data.meta);
  if (data.sprite && (!have || have.id !== data.id)) {
    const img = new Image();
    img.src = "data:image/png;base64," + data.sprite;
    SHEETS.set(data.meta, { id: data.id, img, cols: data.cols, h: data.h, w: data.w,
                            cell: new Map(data.index.map((t, i) => [t, i])) });
  }
  // paint(canvas): the map's painter of the hovered point's image (from this sheet, or fetched on
  // demand); the map is the one reader of the sheet and the one painter, this strip only asks it
  const show = (testIndex, label, paint) => {
    if (typeof paint !== "function") return;
    paint(canvas);
    canvas.style.visibility = "visible";
    text.textContent = label >= 0 ? `test #${testIndex} · label ${label}` : `test #${testIndex}`;
    canvas.dataset.testIndex = String(testIndex);
  };
  // one listener per element; it removes itself once the element has left the page
  if (parentElement.__vaeHover) window.removeEventListener("vae:map-hover", parentElement.__vaeHover);
  parentElement.__vaeHover = (ev) => {
    if (!parentElement.isConnected) { window.removeEventListener("vae:map-hover", parentElement.__vaeHover); return; }
    const d = ev.detail || {};
    if (d.meta === data.meta) show(Number(d.testIndex), Number(d.label), d.paint);
  };
  window.addEventListener("vae:map-hover", parentElement.__vaeHover);
}
"""

_COMPONENT = st.components.v2.component("vae_hover_preview", html=_HTML, css=_CSS, js=_JS)


def hover_sprite(images: np.ndarray, test_index: np.ndarray) -> dict:
    """Thumbnails (N, H, W[, 3]) in [0, 1] of the map points (in map order) -> sprite payload."""
    data, cols = sprite_sheet(images)
    return {
        "id": hashlib.sha1(data).hexdigest()[:16],
        "sprite": base64.b64encode(data).decode("ascii"),
        "cols": cols,
        "h": images.shape[1],
        "w": images.shape[2],
        "index": [int(i) for i in test_index],
    }


def hover_preview(sprite: dict, key: str) -> None:
    """Render the preview strip; the sprite goes to the browser only when its id is new."""
    sent_key = f"{key}__sprite_sent"
    send = st.session_state.get(sent_key) != sprite["id"]
    data = {**sprite, "meta": MAP_META}
    if not send:
        data["sprite"] = None
    _COMPONENT(key=key, data=data)
    st.session_state[sent_key] = sprite["id"]
