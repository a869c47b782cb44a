"""The Explorer's z: the one ZSync that holds it, everything that sets it, and the panel that shows it.

z lives in st.session_state["explorer_z"], a ZSync (app/components/z_sync.py: the protocol with the
browser's sliders). Sets, as callbacks that run before the script, so the map star, the sliders and
the image agree within one run: a map click (select_row), the test-index input (on_index), the
buttons z = 0, prior sample and posterior sample. The browser's slider releases are reported into
the ZSync by the decoder component itself.

The panel (z_panel): the buttons, one slider per latent dim with the decoded image
(app.components.latent_decoder), what z is now, z downloads, a z.json loader (on_z_file, checked by
app.z_share) and the "Copy link" of this view; each run keeps the URL's ?model=&z= in step
(app.url_state). hand_over: z from outside (a link, the Upload page) for a model the explorer opens.
MLP and conv decoders run in the browser, so the image follows a drag frame by frame with no server
work; a decoder the browser cannot run (or the toggle off) decodes here: the component reports z on
release and, while dragging, at most every PREVIEW_MS with one request in flight; the _decoder fragment, rerun alone by
that, decodes z and hands the pixels to the component.

Other session-state keys, all prefixed explorer_: selected (test index or None), index (the number
input), draws (sample counter), model (open checkpoint). Import-light (no torch): the page imports
this module before the map is drawn; the functions that need torch import it themselves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from app.components.latent_map import selected_index
from app.components.z_sync import ZSync
from app.safe import plain
from app.url_state import keep_in_url, share_url
from app.views.latent_data import ModelView
from app.z_share import ShareError, read_z_json, resolve_model, z_json
from vae_core.constants import KL_COLLAPSED_NATS

if TYPE_CHECKING:
    import torch

    from vae_core.checkpoints import Checkpoint

P = "explorer_"
PREVIEW_MS = 100  # server decoding: at most one z per this many ms while a slider is dragged


def z_sync() -> ZSync:
    """This session's z (made by reset_for when the page opens a model)."""
    return st.session_state[P + "z"]


def _set(z, origin: str) -> None:
    if P + "z" in st.session_state:
        z_sync().set(z, origin)
    else:
        st.session_state[P + "z"] = ZSync(z, origin=origin)


def _select(test_index: int, mu) -> None:
    st.session_state[P + "selected"] = st.session_state[P + "index"] = test_index
    _set(mu, f"μ of test #{test_index}")


def select_point(ckpt: Checkpoint, test_index: int) -> None:
    """Load the encoder mean of test example `test_index` into the sliders (number input)."""
    from app.common import test_targets
    from vae_core.latent import encode_mean

    x = test_targets(ckpt)
    test_index = int(np.clip(test_index, 0, len(x) - 1))
    _select(test_index, encode_mean(ckpt.model, x[test_index : test_index + 1])[0])


def select_row(view: ModelView, row: int) -> None:
    """Load map point `row` (its cached encoder mean, the value the browser already moved the
    sliders to) into the sliders: no encoder pass, no torch."""
    _select(int(view.index[row]), view.means[row])


def hand_over(path: str, z, origin: str) -> None:
    """z from outside the explorer (a link, an uploaded image, a z.json) for the model at `path`:
    the explorer opens that model with these sliders instead of its first map point (reset_for keeps
    them: same model, same length)."""
    st.session_state[P + "model"] = path
    st.session_state[P + "draws"] = 0
    st.session_state[P + "selected"] = None
    _set(z, origin)


def open_in_explorer(path: str, z, origin: str) -> None:
    """hand_over z, then switch to the explorer page (from another page's button; stops this run)."""
    from app.views import PAGES

    hand_over(path, z, origin)
    slug, title = next((s, t) for s, t, _, mod in PAGES if mod == "app.views.explorer")
    st.switch_page(st.Page(lambda: None, title=title, url_path=slug))  # pages are matched by url_path


def reset_for(path: str, view: ModelView) -> None:
    """A newly opened model starts on its first map point."""
    sync = st.session_state.get(P + "z")
    if st.session_state.get(P + "model") == path and sync is not None and len(sync.z) == view.latent_dim:
        return
    st.session_state[P + "model"] = path
    st.session_state[P + "draws"] = 0
    select_row(view, 0)


def on_map_select(view: ModelView) -> None:
    """The map's click callback (trigger `select`: the clicked test index)."""
    idx = selected_index(P + "map")
    row = view.row_of(idx) if idx is not None else None
    if row is not None:
        select_row(view, row)


def on_index(ckpt: Checkpoint) -> None:
    select_point(ckpt, int(st.session_state[P + "index"]))


def _next_generator() -> torch.Generator:
    import torch

    st.session_state[P + "draws"] = st.session_state.get(P + "draws", 0) + 1
    return torch.Generator().manual_seed(st.session_state[P + "draws"])


def on_zero() -> None:
    _set([0.0] * len(z_sync().z), "0, the prior's mean")


def on_prior() -> None:
    from vae_core.latent import prior_sample

    _set(prior_sample(len(z_sync().z), _next_generator()), "a prior sample, z ~ N(0, I)")


def on_posterior(ckpt: Checkpoint) -> None:
    idx = st.session_state.get(P + "selected")
    if idx is None:
        return
    from app.common import test_targets
    from vae_core.latent import encode, posterior_sample

    mu, logvar = encode(ckpt.model, test_targets(ckpt)[idx : idx + 1])
    _set(posterior_sample(mu[0], logvar[0], _next_generator()), f"a posterior sample, z ~ q(z|x) of test #{idx}")


# --- the panel --------------------------------------------------------------------------------------


def _download_box() -> dict:
    """{"z": ...} read by the download buttons when clicked: a release reruns only _decoder, not the
    buttons, so they must not keep the z they were drawn with."""
    return st.session_state.setdefault(P + "download_z", {})


def _z_downloads(ckpt: Checkpoint) -> None:
    """Made only when clicked (deferred data): a release does not pay for an 8x PNG."""
    box = _download_box()

    def png() -> bytes:
        from vae_core.images import png_bytes, to_display
        from vae_core.latent import decode

        return png_bytes(to_display(decode(ckpt.model, box["z"]), ckpt.model_config.input_shape), scale=8)

    cols = st.container(horizontal=True, gap="small")
    cols.download_button(
        "image (PNG)",
        png,
        "decoded.png",
        "image/png",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_png",
        help="the decoded image, 8× enlarged",
    )
    cols.download_button(
        "z (JSON)",
        lambda: z_json(ckpt.path, box["z"]),
        "z.json",
        "application/json",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_z",
        help="the sliders' z, to share or load back",
    )


@st.fragment
def _decoder(ckpt: Checkpoint, view: ModelView, weights: dict | None) -> None:
    """The sliders, the image and what z is: a release (or a drag preview) reruns only this
    fragment, a few ms of server work. weights: decode in the browser (vae_core.browser payload),
    or None: decode here."""
    from app.components.latent_decoder import latent_decoder, server_decoder

    sync = z_sync()
    st.caption(f"Sliders: {sync.origin}")  # after a release too: the report was applied before this rerun
    labels, flags = view.slider_labels(), view.collapsed
    if weights is not None:
        latent_decoder(weights, sync, labels, flags, key=P + "decoder", height=224)
    else:
        from app.common import one_thread
        from vae_core.images import to_display
        from vae_core.latent import decode

        with one_thread():
            img = to_display(decode(ckpt.model, sync.z), ckpt.model_config.input_shape)  # (H, W[, 3])
        server_decoder(img, sync, labels, flags, key=P + "decoder", height=224, preview_ms=PREVIEW_MS)
    if sync.clipped:
        dims = ", ".join(f"z{i + 1}" for i in sync.clipped)
        st.caption(
            f"⚠ z was clipped to the sliders' ±{sync.range:g} range in {dims}, so the star sits a "
            "little off the selected point."
        )
    _download_box()["z"] = list(sync.z)
    keep_in_url(ckpt.path, sync.z, sync.rev, paced=weights is None)
    with st.popover("Copy link", icon=":material/link:"):
        st.code(share_url(ckpt.path, sync.z), language=None, wrap_lines=True)
        st.caption("This link opens this model with these z values (copy it with the icon at its right).")


@st.fragment
def z_panel(ckpt: Checkpoint, view: ModelView) -> None:
    """Everything that follows z alone: a z button reruns only this, not the map, the previews or the
    breakdown. The map's star follows the sliders in the browser."""
    b = st.container(horizontal=True, gap="small")  # a narrow column wraps the buttons instead of cutting "p…"
    b.button("z = 0", on_click=on_zero, key=P + "btn_zero", help="z = 0: the prior's mean")
    b.button(
        "prior",
        icon=":material/casino:",
        on_click=on_prior,
        key=P + "btn_prior",
        help="a prior sample: z ~ p(z) = N(0, I)",
    )
    sel = st.session_state.get(P + "selected")
    b.button(
        "posterior",
        icon=":material/target:",
        on_click=on_posterior,
        args=(ckpt,),
        key=P + "btn_post",
        disabled=sel is None,
        help=f"a posterior sample: z ~ q(z|x) of test #{sel}" if sel is not None else "select a point first",
    )
    from app.components.latent_decoder import browser_weights

    weights = browser_weights(ckpt)
    live = weights is not None and st.toggle(
        "Decode in the browser while dragging",
        value=True,
        key=P + "live",
        help="The decoder runs in your browser, so the image follows the slider as you drag. "
        "Off: the server decodes each z instead.",
    )
    _decoder(ckpt, view, weights if live else None)
    if not live:
        st.caption(
            "Decoded on the server: while you drag, the image follows at the server's pace (one "
            f"decode at a time, at most every {PREVIEW_MS} ms); on release it shows the final z."
        )
    n_coll = sum(view.collapsed)
    if n_coll:
        st.caption(
            f"{n_coll} of {view.latent_dim} dims are collapsed (average KL < {KL_COLLAPSED_NATS:g} nats "
            "or inactive): moving them changes little."
        )
    _z_downloads(ckpt)
    _z_file_loader(ckpt, view)


def on_z_file(path: str, latent_dim: int) -> None:
    """The z.json uploader's callback: a valid file for the open model sets the sliders; one naming
    another listed model is offered as a switch (_z_file_loader); anything else leaves one note."""
    from app.common import checkpoint_listing

    st.session_state.pop(P + "z_file_offer", None)
    f = st.session_state.get(P + "z_file")
    if f is None:
        st.session_state.pop(P + "z_file_note", None)
        return
    note = None
    try:
        name, z = read_z_json(f.getvalue())
        rows, _ = checkpoint_listing()
        other = None
        if name is not None and name != os.path.basename(path):
            try:
                other = resolve_model(name, rows)
            except ShareError:
                note = f"This z was saved from {name}, which is not in this server's checkpoint folder"
        if other is not None:
            row = next(r for r in rows if r["path"] == other)
            k = int(row.get("model_config", {}).get("latent_dim", -1))
            if len(z) != k:
                raise ShareError(f"this file's z has {len(z)} values; its model {name} has {k} latent dims")
            st.session_state[P + "z_file_offer"] = (other, z)
            note = f"This z was saved from another model, {name}."
        elif len(z) != latent_dim:
            raise ShareError(
                f"this file's z has {len(z)} values; the open model has {latent_dim} latent dims"
                + (f" ({note[0].lower() + note[1:]})" if note else "")
            )
        else:
            _set(z, "your z.json")
            note = note + ": loaded into the open model." if note else None
    except ShareError as e:
        note = f"Cannot load this z.json: {e}."
    st.session_state[P + "z_file_note"] = note


def _z_file_loader(ckpt: Checkpoint, view: ModelView) -> None:
    """Load a saved z.json back into the sliders (or offer its model)."""
    st.file_uploader(
        "Load a saved z (z.json)",
        type=["json"],
        key=P + "z_file",
        max_upload_size=1,
        on_change=on_z_file,
        args=(ckpt.path, view.latent_dim),
        help="A z.json downloaded here: its z goes into the sliders.",
    )
    note = st.session_state.get(P + "z_file_note")
    if note:
        st.caption(plain(note))
    offer = st.session_state.get(P + "z_file_offer")
    if offer and st.button(
        f"Open {os.path.basename(offer[0])} with this z", key=P + "z_file_switch", icon=":material/swap_horiz:"
    ):
        from app.common import select_checkpoint

        select_checkpoint(offer[0])
        hand_over(offer[0], offer[1], "your z.json")
        st.session_state.pop(P + "z_file_offer", None)
        st.session_state[P + "z_file_note"] = None
        st.rerun()  # the whole app: the sidebar and the map follow the new model
