"""The Latent arithmetic page (issue 12 item 11) under streamlit.testing: class means, z moved along
m_A − m_B, analogies and "Open in the explorer", each z checked against numpy on the map points' means;
and a dataset without labels says so instead of showing class means."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from streamlit.testing.v1 import AppTest

from tests import test_app as _app_tests
from tests.test_app import (
    TIMEOUT,
    _app,
    _ckpt_path,
    _no_exception,
    _targets_and_model,
)
from vae_core.latent import encode_mean
from vae_core.projection import encode_means, point_order
from vae_core.projection_cache import read_cache

# test_app's fixtures, bound here so pytest finds them by name (an import would look unused to a linter)
cache_dir = _app_tests.cache_dir
use_cache = _app_tests.use_cache


def _means_by_label(path: str) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """{label: mean of the map points' μ with that label} computed here, and the map's test indices."""
    from vae_core.data import load_dataset

    cached = read_cache(path)
    x, model = _targets_and_model(path)
    if cached is not None:
        index, means = cached.index, cached.means
    else:
        index = point_order(len(x))
        means = encode_means(model, x[torch.from_numpy(index)])
    labels = load_dataset("digits").y_test.numpy()[index]
    return {int(c): np.asarray(means, np.float64)[labels == c].mean(0) for c in np.unique(labels)}, index


def _mu(path: str, i: int) -> np.ndarray:
    x, model = _targets_and_model(path)
    return encode_mean(model, x[i : i + 1])[0].double().numpy()


def test_moving_z_along_a_class_direction(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("arithmetic", path)
    _no_exception(at)
    m, _ = _means_by_label(path)
    assert len(at.get("image")) >= 1 and at.selectbox(key="arith_mean_pick").options == [str(c) for c in sorted(m)]
    at.selectbox(key="arith_a").set_value(7)
    at.selectbox(key="arith_b").set_value(2)
    at.radio(key="arith_base").set_value("a class mean").run()
    at.selectbox(key="arith_base_class").set_value(4)
    at.slider(key="arith_alpha").set_value(2.5).run()
    _no_exception(at)
    d = m[7] - m[2]
    np.testing.assert_allclose(at.session_state["arith_dir_z"], m[4] + 2.5 * d, rtol=1e-4, atol=1e-5)
    shown = [c.value.replace("\\", "") for c in at.caption]
    assert any(f"|d| = {np.linalg.norm(d):.3f}" in t and "α = 2.5" in t for t in shown), shown
    # base = a test example's μ, unit direction: z = μ(#5) + α d / |d|
    at.radio(key="arith_base").set_value("a test example's μ").run()
    at.number_input(key="arith_base_index").set_value(5)
    at.toggle(key="arith_unit").set_value(True)
    at.slider(key="arith_alpha").set_value(-1.5).run()
    _no_exception(at)
    want = _mu(path, 5) - 1.5 * d / np.linalg.norm(d)
    np.testing.assert_allclose(at.session_state["arith_dir_z"], want, rtol=1e-4, atol=1e-5)


def test_the_alpha_sweep_gif_has_one_frame_per_step(use_cache, media):
    path = _ckpt_path(use_cache, 2)
    at = _app("arithmetic", path)
    at.slider(key="arith_steps").set_value(5).run()
    _no_exception(at)
    from vae_core.images import to_display
    from vae_core.latent import decode

    m, _ = _means_by_label(path)
    a, b = 1, 0  # the page's defaults: A = the second label, B = the first; base m_B
    zs = m[b][None] + np.linspace(-3, 3, 5)[:, None] * (m[a] - m[b])[None]
    _, model = _targets_and_model(path)
    want = to_display(decode(model, torch.tensor(zs, dtype=torch.float32)), (1, 8, 8))  # (5, 8, 8): digits
    gif = _download(at, media, "arith_dl_gif")
    img = Image.open(io.BytesIO(gif))
    frames = [np.asarray(f.convert("L"), np.float32) / 255 for f in ImageSequence.Iterator(img)]
    assert img.size == (8 * 4, 8 * 4) and len(frames) == 5
    assert np.abs(frames[0] - frames[-1]).max() > 0.02  # the sweep changes the image
    for f, w in zip(frames, want):  # frame t is image t, 4x nearest-neighbour upscaled
        np.testing.assert_allclose(f[::4, ::4], w, atol=1 / 255 + 1e-3)


@pytest.fixture
def media(monkeypatch) -> list:
    """The in-memory media stores AppTest makes (one per run), kept so a test can read the bytes
    behind a download button after the run (AppTest drops its mock runtime when the run ends)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    made = []

    class Kept(MemoryMediaFileStorage):
        def __init__(self, endpoint):
            super().__init__(endpoint)
            made.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Kept)
    return made


def _download(at: AppTest, media: list, key: str) -> bytes:
    """The bytes behind download button `key` in the last run."""
    (btn,) = [e for e in at.get("download_button") if e.proto.id.endswith(key)]
    return media[-1].get_file(btn.proto.url.rsplit("/", 1)[1]).content


def test_an_analogy_is_a_minus_b_plus_c_and_opens_in_the_explorer(use_cache):
    path = _ckpt_path(use_cache, 3)

    def script(path):
        import streamlit as st

        from app.views import arithmetic, explorer

        st.session_state.setdefault("sidebar_model_path", path)
        st.navigation(
            [
                st.Page(arithmetic.render, title="Latent arithmetic", url_path="arithmetic", default=True),
                st.Page(explorer.render, title="Latent explorer", url_path="explorer"),
            ]
        ).run()

    at = AppTest.from_function(script, args=(path,), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    m, _ = _means_by_label(path)
    at.number_input(key="arith_a_index").set_value(11)
    at.selectbox(key="arith_b_class").set_value(3)
    at.selectbox(key="arith_c_class").set_value(8).run()
    _no_exception(at)
    want = _mu(path, 11) - m[3] + m[8]
    np.testing.assert_allclose(at.session_state["arith_analogy_z"], want, rtol=1e-4, atol=1e-5)
    assert any("μ(#11) − m_3 + m_8" in c.value.replace("\\", "") for c in at.caption)
    at.button(key="arith_open_analogy").click().run()
    _no_exception(at)
    assert any("Latent explorer" in t.value for t in at.title)  # switched page
    z = at.session_state["explorer_z"]
    np.testing.assert_allclose(z.z, np.clip(want, -z.range, z.range), atol=1e-5)
    assert z.origin == "μ(#11) − m_3 + m_8"


@pytest.fixture
def unlabelled(tmp_path, monkeypatch, seeded_vae):
    """An untrained VAE on an .npz without labels, in its own checkpoint folder."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "nolabels.npz", x_train=x[:30], x_test=x[30:])
    monkeypatch.setenv("VAE_DATA_ROOTS", str(data))
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(ckpts))
    return seeded_vae(ckpts, "nolabels", str(data / "nolabels.npz"), latent_dim=2, hidden=(8,))


def test_a_dataset_without_labels_says_so_and_keeps_analogies(unlabelled):
    at = _app("arithmetic", unlabelled)
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert len(at.info) == 2 and all("no labels" in i.value for i in at.info)  # class means, direction
    assert at.selectbox(key="arith_a_kind").options == ["test example"]
    at.number_input(key="arith_a_index").set_value(3)
    at.number_input(key="arith_b_index").set_value(4)
    at.number_input(key="arith_c_index").set_value(5).run()
    want = _mu(unlabelled, 3) - _mu(unlabelled, 4) + _mu(unlabelled, 5)
    np.testing.assert_allclose(at.session_state["arith_analogy_z"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [1, "conv"])
def test_the_page_runs_on_one_latent_dim_and_a_conv_model(use_cache, k):
    at = _app("arithmetic", _ckpt_path(use_cache, k))
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    z = np.asarray(at.session_state["arith_dir_z"])
    assert z.shape == (1 if k == 1 else 4,) and np.isfinite(z).all()
    assert len(at.session_state["arith_analogy_z"]) == len(z)
