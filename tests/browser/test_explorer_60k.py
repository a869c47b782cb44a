"""The Explorer (`streamlit run app/main.py`) on a model whose test set has 60,000 images: every point
is on the map, a click loads the nearest point under the pointer, and hovering a point beyond the
page's up-front sprite sheet shows its image, fetched on demand. A tiny seeded model and 8x8 images
made here (tests.harness.map_bench.explorer_checkpoint writes the dataset, checkpoint and map cache)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from app.settings import DEBUG_HOOKS_ENV
from app.views.explorer_panels import HOVER_MAX
from tests.harness.browser import StreamlitServer, new_page, wait_idle
from tests.harness.map_bench import explorer_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import VAE
from vae_core.projection_cache import read_cache

pytestmark = pytest.mark.browser
N = 60_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big60k")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, N)
    protos = rng.integers(0, 256, (10, 8, 8))
    images = np.clip(protos[labels] + rng.normal(0, 40, (N, 8, 8)), 0, 255).astype(np.uint8)
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(32,))).eval()
    path = explorer_checkpoint(
        str(folder),
        model,
        TrainConfig(dataset="digits", epochs=1),
        images,
        labels,
        {"kl_per_dim": [1.0, 0.8, 0.5, 0.3]},
    )
    return folder, path, images


@pytest.fixture(scope="module")
def page(browser, big):
    folder = str(big[0])
    with StreamlitServer(
        "app/main.py", env={"VAE_CHECKPOINT_DIR": folder, "VAE_DATA_ROOTS": folder, DEBUG_HOOKS_ENV: "1"}
    ) as s:
        p = new_page(browser, 1400, 1300)
        p.goto(s.url + "/")
        p.wait_for_function("n => window.__vaeMap && window.__vaeMap.drawn >= n", arg=N, timeout=300_000)
        # a map this big goes out alone first; the rest of the page (the controls above the map among it)
        # follows once torch is loaded, and moves the map down: wait for it, so that points() are where
        # a click lands
        p.get_by_text("Loading the decoder…").wait_for(state="detached", timeout=300_000)
        wait_idle(p)
        yield p
        p.close()


def points(page):
    a = np.array(page.evaluate("() => window.__vaeMap.points().map(p => [p.x, p.y, p.testIndex, p.row])"))
    return a[:, :2], a[:, 2].astype(int), a[:, 3].astype(int)


def test_every_point_of_a_60k_test_set_is_cached_and_drawn(page, big):
    assert len(read_cache(big[1]).index) == N
    assert page.evaluate("window.__vaeMap.drawn") == N
    page.get_by_text(f"Showing {N:,} of {N:,} test points").first.wait_for(timeout=300_000)


def test_a_click_loads_the_nearest_point_under_the_pointer(page):
    xy, index, _ = points(page)
    rng = np.random.default_rng(1)
    for target in rng.choice(len(xy), 2, replace=False):
        q = xy[target] + rng.uniform(-3, 3, 2)
        want = int(index[np.argmin(((xy - q) ** 2).sum(1))])
        page.mouse.click(*q)
        page.get_by_text(f"Selected #{want}").first.wait_for(timeout=300_000)  # the server loaded it
        assert page.evaluate("window.__vaeMap.selectedIndex()") == want


def test_hover_shows_the_image_of_a_point_beyond_the_sprite_sheet(page, big):
    from scipy.spatial import cKDTree

    images = big[2]
    xy, index, row = points(page)
    d, _ = cKDTree(xy).query(xy, k=2)
    far = np.flatnonzero((row >= HOVER_MAX) & (d[:, 1] >= 10))  # not in the up-front sheet, isolated
    i = far[0]
    preview = page.locator("[data-testid=hover-preview-canvas]")
    page.mouse.move(*xy[i])
    page.mouse.move(xy[i][0] + 1, xy[i][1])
    deadline = time.monotonic() + 300  # a hang guard
    while preview.get_attribute("data-test-index") != str(index[i]):
        assert time.monotonic() < deadline, "no hover image"
        time.sleep(0.1)
    assert re.fullmatch(rf"test #{index[i]} · label \d", page.locator("[data-testid=hover-preview-text]").inner_text())
    shown = np.array(preview.evaluate("c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"))
    np.testing.assert_allclose(shown.reshape(8, 8, 4)[..., 0], images[index[i]], atol=1)
    assert page.evaluate("window.__vaeMap.thumbRequests") >= 1
