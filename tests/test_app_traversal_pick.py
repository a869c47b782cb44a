"""Traversal page (issue 12 item 11): interpolation endpoints picked by clicking map points, marked
"start" and "end" on the map; GIF exports of the traversal and the interpolation.

The map is the explorer's canvas map (app.components.latent_map). AppTest has no browser: a click is
what the map's `select` trigger does before a run, its callback with the clicked test index in the
map's state (as tests/test_app_compare.py does)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from streamlit.testing.v1 import AppTest

from tests import test_app as _app_tests
from tests.test_app import TIMEOUT, _app, _ckpt_path, _component_data, _no_exception, _targets_and_model
from vae_core.images import to_display
from vae_core.latent import decode, encode_mean, lerp, slerp

# fixtures of other test modules, bound here so pytest finds them by name
cache_dir = _app_tests.cache_dir
use_cache = _app_tests.use_cache


def _page(model: str) -> None:
    """The traversal page; a test index put under "click" is clicked on the map before the run."""
    import streamlit as st

    from app.views import traversal

    st.session_state.setdefault("sidebar_model_path", model)
    st.set_page_config(layout="wide")
    click = st.session_state.pop("click", None)
    if click is not None:
        st.session_state["traversal_map"] = {"select": click}
        traversal._on_map_pick(10**9)
        del st.session_state["traversal_map"]
    traversal.render()


def _click(at: AppTest, test_index: int) -> None:
    at.session_state["click"] = int(test_index)
    at.run()
    _no_exception(at)


def _map(at: AppTest) -> dict:
    return _component_data(at, "vae_latent_map")


def test_clicking_map_points_sets_the_start_then_the_end(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = AppTest.from_function(_page, args=(path,), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    first_map = _map(at)
    index = np.frombuffer(first_map["_blobs"]["points.index"], "<i4")
    xy = np.frombuffer(first_map["_blobs"]["points.xy"], "<f4").reshape(-1, 2)
    where = {int(i): xy[r] for r, i in enumerate(index)}
    a0, b0 = at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value
    assert at.radio(key="traversal_next").value == "start"
    points = [int(i) for i in index if i not in (a0, b0)]
    first, second = points[5], points[17]
    _click(at, first)
    assert at.number_input(key="traversal_from").value == first
    assert at.number_input(key="traversal_to").value == b0  # the end stays
    assert at.radio(key="traversal_next").value == "end"
    _click(at, second)
    assert at.number_input(key="traversal_to").value == second
    assert at.number_input(key="traversal_from").value == first
    assert at.radio(key="traversal_next").value == "start"
    # the markers sit on the clicked points, and the paths run from one to the other
    m = _map(at)
    assert m["points"] is None and not m["_blobs"]  # the points went once, on the first run
    marks = {o["name"]: o for o in m["overlays"]["marks"]}
    for name, idx in (("start", first), ("end", second)):
        assert marks[name]["text"] == name
        np.testing.assert_allclose(marks[name]["xy"], where[idx], atol=1e-4)
    paths = {o["name"]: np.array(o["xy"]) for o in m["overlays"]["paths"]}
    assert set(paths) == {"linear path", "slerp path"}
    for line in paths.values():
        assert len(line) == at.slider(key="traversal_isteps").value
        np.testing.assert_allclose(line[0], where[first], atol=1e-4)
        np.testing.assert_allclose(line[-1], where[second], atol=1e-4)
    # a typed number still works, and the next click goes to the radio's choice
    at.number_input(key="traversal_to").set_value(b0).run()
    at.radio(key="traversal_next").set_value("end").run()
    _click(at, points[2])
    assert at.number_input(key="traversal_to").value == points[2]
    assert at.number_input(key="traversal_from").value == first


def test_a_click_outside_the_test_set_changes_nothing(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = AppTest.from_function(_page, args=(path,), default_timeout=TIMEOUT)
    at.run()
    before = at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value
    _click(at, -4)
    assert (at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value) == before
    assert at.radio(key="traversal_next").value == "start"


@pytest.fixture
def deferred(monkeypatch) -> list:
    """The media file managers AppTest makes (one per run), kept so a test can run a download button's
    deferred callable after the run, as the server does when the button is clicked."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.testing.v1 import app_test

    made = []

    class Kept(MediaFileManager):
        def __init__(self, storage):
            super().__init__(storage)
            made.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Kept)
    return made


def _deferred_download(at: AppTest, managers: list, key: str) -> bytes:
    """The bytes download button `key` (with a callable as its data) gives when clicked."""
    (btn,) = [e for e in at.get("download_button") if e.proto.id.endswith(key)]
    assert btn.proto.deferred_file_id and not btn.proto.url  # nothing made before the click
    mgr = managers[-1]
    url = mgr.execute_deferred(btn.proto.deferred_file_id)
    return mgr._storage.get_file(url.rsplit("/", 1)[1].split(".")[0]).content


def _gif_frames(data: bytes) -> tuple[tuple[int, int], list[np.ndarray]]:
    img = Image.open(io.BytesIO(data))
    return img.size, [np.asarray(f.convert("L"), np.float32) / 255 for f in ImageSequence.Iterator(img)]


def test_gif_exports_have_one_frame_per_step(use_cache, deferred):
    path = _ckpt_path(use_cache, 2)  # k = 2: two traversal rows
    at = _app("traversal", path)
    at.slider(key="traversal_steps").set_value(7)
    at.slider(key="traversal_isteps").set_value(5).run()
    _no_exception(at)
    x, model = _targets_and_model(path)
    shape = (1, 8, 8)  # digits

    # traversal from z = 0: frame j shows both dims at value v_j (rows in KL order, side by side)
    size, frames = _gif_frames(_deferred_download(at, deferred, "traversal_dl_gif"))
    assert len(frames) == 7 and size == ((2 * 8 + 1) * 4, 8 * 4)
    values = torch.linspace(-3, 3, 7)
    rows = at.get("html")[0].proto.body  # the traversal rows: labels beside their strips
    first_row_dim = int(re.search(r'data-dim="(\d+)"', rows).group(1)) - 1
    assert rows.count("<img") == 2 and rows.count("data:image/png;base64,") == 2
    z = torch.zeros(7, 2)
    z[:, first_row_dim] = values
    want = to_display(decode(model, z), shape)
    for f, w in zip(frames, want):
        np.testing.assert_allclose(f[::4, :32:4], w, atol=1 / 255 + 1e-3)
    assert np.abs(frames[0] - frames[-1]).max() > 0.02
    # the first strip on the page is the same row: 7 images with 1 px gaps, upscaled by a whole factor
    src = re.search(r'src="data:image/png;base64,([^"]+)"', rows).group(1)
    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("L"), np.float32) / 255
    f = strip.shape[0] // 8
    assert strip.shape == (8 * f, (7 * 9 - 1) * f)
    for j, w in enumerate(want):
        np.testing.assert_allclose(
            strip[::f, ::f][:, 9 * j : 9 * j + 8], w[0] if w.ndim == 3 else w, atol=1 / 255 + 1e-3
        )

    png = Image.open(io.BytesIO(_deferred_download(at, deferred, "traversal_dl_grid")))
    assert png.format == "PNG" and png.size == ((7 * 9 - 1) * 4, (2 * 9 - 1) * 4)  # 2 rows of 7, 1 px gaps, x4

    # interpolation: frame t is lerp (left) and slerp (right) at t
    a, b = at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value
    mu = encode_mean(model, x[[a, b]])
    t = torch.linspace(0, 1, 5)
    size, frames = _gif_frames(_deferred_download(at, deferred, "traversal_dl_igif"))
    assert len(frames) == 5 and size == ((2 * 8 + 1) * 4, 8 * 4)
    lin, sl = (
        to_display(decode(model, lerp(mu[0], mu[1], t)), shape),
        to_display(decode(model, slerp(mu[0], mu[1], t)), shape),
    )
    for f, wl, ws in zip(frames, lin, sl):
        np.testing.assert_allclose(f[::4, :32:4], wl, atol=1 / 255 + 1e-3)
        np.testing.assert_allclose(f[::4, 36::4], ws, atol=1 / 255 + 1e-3)
