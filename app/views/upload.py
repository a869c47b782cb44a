"""Upload or draw: your own image, preprocessed like MNIST, encoded, placed on the map, with its ELBO."""

from __future__ import annotations

import streamlit as st

from app.common import current_checkpoint
from app.components.latent_map import overlay_mark
from app.safe import plain
from app.views.breakdown import render_breakdown, show_image
from app.views.explorer_z import open_in_explorer
from app.views.latent_data import model_view
from app.views.latent_map import choose_projection, test_points_map
from app.z_share import z_json
from vae_core.data import eval_targets
from vae_core.images import (
    MAX_UPLOAD_BYTES,
    ImageError,
    open_upload,
    png_bytes,
    preprocess,
    to_display,
)
from vae_core.latent import encode_mean

P = "upload_"


def _source() -> tuple[bytes | None, str]:
    """(image bytes or None, name) from the uploader or the drawing canvas."""
    tab_up, tab_draw = st.tabs([":material/upload_file: Upload a PNG / JPEG", ":material/draw: Draw"])
    with tab_up:
        f = st.file_uploader(
            "Image file",
            type=["png", "jpg", "jpeg"],
            key=P + "file",
            max_upload_size=MAX_UPLOAD_BYTES // 2**20,
            help=f"PNG or JPEG, at most {MAX_UPLOAD_BYTES // 2**20} MB. A photo of a digit on "
            "paper works: it is turned grey, inverted if the background is light, cropped "
            "to the ink and centred like MNIST.",
        )
    with tab_draw:
        try:
            from app.components.draw_canvas import draw_canvas

            drawn = draw_canvas(key=P + "canvas")
        except Exception as e:  # no component support: uploading still works
            st.warning(f"The drawing canvas is unavailable here ({type(e).__name__}); upload a file instead.")
            drawn = None
    if f is not None:
        return f.getvalue(), f.name
    return drawn, "drawing"


def _options() -> tuple[str, bool]:
    """The preprocessing controls row: (invert choice, crop-and-centre toggle)."""
    c1, c2 = st.columns(2)
    invert = c1.radio(
        "Invert",
        ["auto", "yes", "no"],
        horizontal=True,
        key=P + "invert",
        help="auto: invert when the border is light (dark ink on white paper → MNIST's white-on-black)",
    )
    center = c2.toggle(
        "Crop and centre like MNIST",
        value=True,
        key=P + "center",
        help="crop to the ink, scale it into a 20×20 box, centre it by its centre of mass",
    )
    return invert, center


def _side_panel(ckpt, x, target, mu) -> None:
    """The right column: explorer button, the two images and the downloads."""
    shape = ckpt.model_config.input_shape
    tc = ckpt.train_config
    c = st.columns(2)
    if st.button(
        "Open in explorer",
        icon=":material/explore:",
        key=P + "to_explorer",
        help="Put this image's μ(x) into the explorer's sliders and go there",
    ):
        open_in_explorer(ckpt.path, mu[0], "your upload")
    with c[0]:
        show_image(x, ckpt, "preprocessed (grey levels)", 168)
    with c[1]:
        show_image(
            target,
            ckpt,
            "as the likelihood sees it" + (f" ({tc.binarize} binarized)" if tc.binarize != "none" else ""),
            168,
        )
    st.download_button(
        "preprocessed image (PNG)",
        png_bytes(to_display(x, shape), scale=8),
        "input.png",
        "image/png",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_png",
    )
    st.download_button(
        "its z = μ(x) (JSON)",
        z_json(ckpt.path, mu[0].tolist()),
        "z.json",
        "application/json",
        icon=":material/download:",
        on_click="ignore",
        key=P + "dl_z",
    )


def _map(proj, view, mu, ckpt_path: str) -> None:
    """The left column's map (the explorer's canvas map) with the image's μ(x) marked among the test
    points; hovering a point shows its test image."""
    xy = proj.transform(mu.numpy())[0]
    test_points_map(
        proj,
        view,
        ckpt_path,
        key=P + "map",
        meta="vae-upload-map",
        height=460,
        overlays=([], [overlay_mark("your image μ(x)", xy, "#d62728", "diamond")]),
    )
    st.caption(
        f"◆ = your image's encoder mean among {len(view.means):,} test points ({proj.name.upper()}).", help=proj.help
    )


def render() -> None:
    """The Upload page: source, options, then the map, the images and the ELBO breakdown."""
    st.title(":material/draw: Upload or draw")
    ckpt = current_checkpoint()
    if ckpt is None:
        return
    shape = ckpt.model_config.input_shape
    st.caption(
        f"This model takes {'×'.join(map(str, shape))} inputs. Your image is converted to that "
        "(grey or RGB, resized, scaled to [0, 1]), encoded, and shown on the map with its ELBO."
    )
    data, name = _source()
    invert, center = _options()
    view = model_view(ckpt)
    left, right = st.columns([3, 2])
    with left:  # rendered on every run, image or not: a radio missing from one run (the uploader empty while
        # a new file replaces the old) loses its state, and came back showing PCA over a UMAP map
        proj = choose_projection(view, ckpt.path, key=P + "projection")
    if data is None:
        right.info("Upload an image or draw a digit to encode it.")
        return
    try:
        x = preprocess(open_upload(data, name), shape, invert=invert, center=center)
    except ImageError as e:
        st.error(f"Cannot use this image: {plain(e)}")
        return
    # what the likelihood scores: binarized like the test set when the model was trained so
    target = eval_targets(x[None], ckpt.train_config.binarize)[0]
    mu = encode_mean(ckpt.model, target[None])  # (1, k)
    with right:
        _side_panel(ckpt, x, target, mu)
    with left:
        _map(proj, view, mu, ckpt.path)
    st.divider()
    render_breakdown(
        ckpt,
        target,
        key=P + "bd",
        collapsed=view.collapsed,
        title=f"Your image ({plain(name)})",
        original_caption="your image (target)",
        source="your image",
    )
