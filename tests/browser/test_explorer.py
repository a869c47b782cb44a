"""The whole app (`streamlit run app/main.py`) in headless Chromium: the Explorer page on the default model."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from tests.harness.browser import (
    StreamlitServer,
    canvas_pixels,
    click_to_sliders_ms,
    drag_slider,
    hook,
    map_points,
    new_page,
    save_screenshot,
    slider_values,
    wait_for_frames,
)
from vae_core.cache import default_checkpoint_path
from vae_core.checkpoints import load_checkpoint
from vae_core.data import eval_targets, load_dataset

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def default_model():
    path = default_checkpoint_path()
    if not os.path.exists(path):
        pytest.skip(f"the shipped default checkpoint {path} is not present")
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def app_server(browser, default_model):
    with StreamlitServer("app/main.py") as server:
        yield server


@pytest.fixture(scope="module")
def page(browser, app_server):
    """One Explorer page for this module's tests (a load costs 5-20 s on a busy 2-core machine)."""
    p = new_page(browser)
    p.goto(app_server.url + "/")  # the Explorer is the default page
    wait_for_frames(p, 1, timeout_ms=300_000)
    yield p
    p.close()


def shown(page) -> np.ndarray:
    h, w = page.locator("[data-testid=vae-decoder-canvas]").evaluate("c => [c.height, c.width]")
    return np.array(canvas_pixels(page), dtype=np.float64).reshape(h, w, 4)[..., 0]


def decoded_grey(model, z) -> np.ndarray:
    with torch.no_grad():
        return np.round(model.decode_mean(torch.tensor([z]))[0, 0].numpy() * 255)


def test_explorer_loads_on_the_default_model(page, default_model):
    assert hook(page)["key"] == "explorer_decoder"
    assert page.get_by_text("Latent explorer").first.is_visible()
    k = default_model.model_config.latent_dim
    assert len(slider_values(page)) == k
    # the sliders start on the encoder mean of a test point, and the canvas shows its decode
    z = hook(page)["z"]
    assert any(abs(v) > 0.05 for v in z)
    np.testing.assert_allclose(shown(page), decoded_grey(default_model.model, z), atol=1.0)
    assert slider_values(page) == pytest.approx(z, abs=0.006)
    save_screenshot(page, "explorer_loaded.png")


def test_explorer_image_follows_slider_while_dragging(page, default_model):
    images = []
    fractions = [0.5 + 0.04 * i for i in range(1, 12)]
    drag_slider(page, 0, fractions, on_step=lambda _: images.append(shown(page)))
    assert len({im.tobytes() for im in images}) >= len(fractions) - 1
    np.testing.assert_allclose(images[-1], decoded_grey(default_model.model, hook(page)["z"]), atol=1.0)
    page.wait_for_function("() => window.__vaeDecoder.sent >= 1")


def test_explorer_release_is_not_echoed_back_into_the_sliders(page):
    """The page stores the released z and passes it back: that rerun must not reset the sliders
    (which would yank a slider the user is already dragging again)."""
    h0 = hook(page)
    drag_slider(page, 5, [0.2])
    page.wait_for_function("n => window.__vaeDecoder.updates > n", arg=h0["updates"], timeout=300_000)
    page.wait_for_timeout(300)
    h1 = hook(page)
    assert h1["sent"] == h0["sent"] + 1
    assert h1["zFromPython"] == h0["zFromPython"]
    assert slider_values(page)[5] == pytest.approx(h1["z"][5]) and h1["z"][5] < -1
    # the sliders no longer hold the selected point's μ, and the page says so
    page.get_by_text("Sliders: dragged by hand").wait_for(timeout=300_000)
    assert page.get_by_text("Sliders: μ of test #").count() == 0


def test_explorer_map_click_loads_the_points_z(page, default_model):
    data = load_dataset(default_model.train_config.dataset, test_fraction=default_model.train_config.test_fraction)
    x = eval_targets(data.x_test, default_model.train_config.binarize)
    rng = random.Random(0)
    for _ in range(3):
        point = rng.choice(map_points(page, spacing_px=8))  # [x, y, test index], away from its neighbours
        ms = click_to_sliders_ms(page, point)
        assert ms < 30_000
        page.get_by_text(f"Selected #{point[2]}").first.wait_for(timeout=300_000)  # the server followed
        page.get_by_text(f"Sliders: μ of test #{point[2]}").wait_for(timeout=300_000)
        idx = int(page.get_by_label("Test example #", exact=True).input_value())
        assert idx == point[2] and page.evaluate("window.__vaeMap.selectedIndex()") == idx
        with torch.no_grad():
            mu = default_model.model.encode(x[idx : idx + 1])[0][0].clamp(-3, 3)
        np.testing.assert_allclose(hook(page)["z"], mu.numpy(), atol=1e-5)
        assert slider_values(page) == pytest.approx(mu.tolist(), abs=0.006)
    save_screenshot(page, "explorer_after_click.png")


def test_the_star_follows_a_drag_where_the_server_would_place_it(page, default_model):
    """The decoder announces z while a slider moves (vae:z); the map places the star with its port of
    vae_core.projection (here UMAP's kNN placement over the shipped projection cache)."""
    from vae_core.projection_cache import read_cache

    basis = read_cache(default_checkpoint_path()).umap_projection()
    before = page.evaluate("window.__vaeMap.star()")
    drag_slider(page, 2, [0.3, 0.6, 0.9])
    star, z = page.evaluate("window.__vaeMap.star()"), hook(page)["z"]
    assert star != before
    np.testing.assert_allclose(star, basis.transform(np.array([z]))[0], rtol=1e-4, atol=1e-4)
