"""The files of a st.components.v2 component, read from app/components/<name>/: one loader for all.

    _COMPONENT = st.components.v2.component("vae_latent_decoder", **assets(
        "latent_decoder", js=["z_sync.mjs", "component.js"], shared=["decode.mjs"]))

The component's JS is one ES module: the shared vae_core/js files first (the readers of vae_core's
formats, also run by the node tests and the static export), then its own files, in order.
"""

from __future__ import annotations

import os

from vae_core.js import js_source

_DIR = os.path.dirname(os.path.abspath(__file__))


def read_asset(component: str, name: str) -> str:
    """The text of app/components/<component>/<name>."""
    with open(os.path.join(_DIR, component, name), encoding="utf-8") as f:
        return f.read()


def assets(component: str, js: list[str], shared: list[str] = ()) -> dict:
    """{html, css, js} for st.components.v2.component(name, **assets(...)): component.html,
    component.css, and the vae_core/js files `shared` followed by the component's files `js`."""
    return {
        "html": read_asset(component, "component.html"),
        "css": read_asset(component, "component.css"),
        "js": "\n".join([js_source(f) for f in shared] + [read_asset(component, f) for f in js]),
    }
