"""The JS readers of vae_core's browser formats, shared by the Streamlit components (app/components),
the static export (vae_core.export_html) and the node tests:

    decode.mjs   the decoder payload of vae_core.browser (MLP and conv) -> E[x|z] and RGBA pixels
    project.mjs  vae_core.projection's map math (latent plane, PCA, UMAP's kNN transform)
"""

from __future__ import annotations

import os

_DIR = os.path.dirname(os.path.abspath(__file__))


def js_source(name: str) -> str:
    """The text of vae_core/js/<name>."""
    with open(os.path.join(_DIR, name), encoding="utf-8") as f:
        return f.read()
