"""The explorer's map overlays in headless Chromium (issue 12 items 9 and 10), on a seeded 8x8 model
(k = 4: a PCA map): picking a label in "Map points by label" fades the other labels on the map and
names the label in its legend; the selected point's q(z|x) samples are drawn around it, placed by the
map's PCA, and follow a click to another point."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.harness.browser import StreamlitServer, map_points, new_page, save_screenshot, wait_for_map, wait_idle
from vae_core.checkpoints import load_checkpoint
from vae_core.data import eval_targets, load_dataset
from vae_core.latent import posterior_samples
from vae_core.projection import encode_means, fit_pca, point_order

pytestmark = pytest.mark.browser
PlaywrightTimeout = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").TimeoutError
DIMMED = [170, 170, 170, 38]  # app/components/latent_map/points.mjs


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, make_seeded_checkpoints):
    folder = tmp_path_factory.mktemp("overlay_ckpts")
    return make_seeded_checkpoints(folder, [("overlay", (1, 8, 8), "bernoulli")])["overlay"], folder


@pytest.fixture(scope="module")
def server(browser, model_path):
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": str(model_path[1])}) as s:
        yield s


def _expected_cloud(path: str, test_index: int) -> np.ndarray:
    """The cloud's map positions computed here: the same seeded q(z|x) draws, through the map's PCA."""
    ck = load_checkpoint(path)
    data = load_dataset(ck.train_config.dataset, test_fraction=ck.train_config.test_fraction)
    x = eval_targets(data.x_test, ck.train_config.binarize)
    means = encode_means(ck.model, x[torch.from_numpy(point_order(len(x)))])
    z = posterior_samples(ck.model, x[test_index], 64, torch.Generator().manual_seed(0)).numpy()
    return fit_pca(means).transform(z), data.y_test.numpy()


def _wait_cloud(page, test_index: int) -> dict:
    page.wait_for_function(
        "t => { const h = window.__vaeMap, c = h.cloud(); return c && c.testIndex === t && c.xy && h.cloudDrawn > 0; }",
        arg=test_index,
        timeout=300_000,
    )
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return page.evaluate(
        "() => ({ ...window.__vaeMap.cloud(), drawn: window.__vaeMap.cloudDrawn, v: window.__vaeMap.visibleRange() })"
    )


def _check_cloud(page, path: str, test_index: int) -> np.ndarray:
    got = _wait_cloud(page, test_index)
    want, labels = _expected_cloud(path, test_index)
    assert got["n"] == 64
    np.testing.assert_allclose(np.array(got["xy"]).reshape(-1, 2), want, atol=1e-3)  # placed by the map's PCA
    v = got["v"]
    inside = (want[:, 0] >= v["x0"]) & (want[:, 0] <= v["x1"]) & (want[:, 1] >= v["y0"]) & (want[:, 1] <= v["y1"])
    assert got["drawn"] == int(inside.sum()) > 0  # every sample in view is drawn
    return labels


def _pick_label(page, name: str) -> None:
    """Open "Map points by label" and pick `name` in its box. The dropdown is opened again if a rerun
    (the decoder reporting z after a click) closed it before the option was clicked."""
    box = page.locator("[data-testid=stExpander]").filter(has_text="Map points by label")
    box.locator("summary").click()
    select = box.locator("[data-testid=stSelectbox]")
    select.wait_for(state="visible")
    for _ in range(4):
        wait_idle(page)
        select.click()
        option = page.get_by_role("option", name=name, exact=True)
        try:
            option.wait_for(timeout=60_000)  # a hang guard: the dropdown opens in the browser
            option.click(timeout=60_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    save_screenshot(page, "label_pick_failed.png")
    raise AssertionError(f"could not pick label {name} in 'Map points by label'")


def test_label_highlight_and_posterior_cloud(browser, server, model_path):
    path = model_path[0]
    page = new_page(browser, 1024, 768)
    page.set_default_timeout(120_000)  # a hang guard
    try:
        page.goto(server.url + "/explorer")
        wait_for_map(page)
        wait_idle(page)
        first = page.evaluate("window.__vaeMap.selectedIndex()")
        labels = _check_cloud(page, path, first)  # the page opens on a point: its cloud comes with the panels
        # a click on another point: the ring moves at once, its own cloud follows
        pt = map_points(page, spacing_px=8)[0]
        page.mouse.click(pt[0], pt[1])
        _check_cloud(page, path, int(pt[2]))
        wait_idle(page)
        # the label filter: nothing faded by default; picking 3 fades every other label
        rows = page.evaluate("() => window.__vaeMap.points().map(p => [p.row, p.testIndex])")
        colour = lambda r: page.evaluate("r => window.__vaeMap.colourOf(r)", r)  # noqa: E731
        assert all(colour(r) != DIMMED for r, _ in rows[:40])
        _pick_label(page, "3")
        page.wait_for_function("() => window.__vaeMap.highlight === 3", timeout=300_000)
        wait_idle(page)
        checked = {True: 0, False: 0}
        for r, t in rows[:200]:
            lit = int(labels[t]) == 3
            c = colour(r)
            assert (c == DIMMED) != lit, (t, labels[t], c)
            if lit:
                assert c[3] == 191
            checked[lit] += 1
        assert checked[True] > 0 and checked[False] > 0
        legend = page.locator("[data-testid=vae-map-highlight]").inner_text()
        assert "highlighting 3" in legend
        assert page.evaluate("window.__vaeMap.cloudDrawn") > 0  # the cloud stays
        page.locator("[data-testid=vae-latent-map]").scroll_into_view_if_needed()
        save_screenshot(page, "explorer_highlight_cloud_1024.png")
    finally:
        page.close()
