"""Compare two models (issue 12 item 13) in headless Chromium at 1024x768, against `streamlit run
app/main.py` over a folder of two tiny digits models trained here: both maps and both decoded images
appear, and a click on a point of B's map selects that test example on both maps and in both panels. The maps
are the explorer's canvas map (app.components.latent_map)."""

from __future__ import annotations

import re

import pytest

from tests.harness.browser import StreamlitServer, new_page, save_screenshot, wait_idle
from vae_core.cache import train_or_load
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare_ckpts")
    data = load_dataset("digits")
    for seed in (0, 1):
        train_or_load(
            ModelConfig(input_shape=data.input_shape, latent_dim=3, hidden=(32,)),
            TrainConfig(dataset="digits", epochs=2, binarize="dynamic", seed=seed),
            data,
            cache_dir=str(folder),
            final_iw_samples=5,
        )
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": str(folder)}) as s:
        yield s


# The two canvas maps' hooks (app/components/latent_map/component.js, window.__vaeMaps by key)
HOOKS = "() => ['compare_map_a', 'compare_map_b'].map(k => window.__vaeMaps && window.__vaeMaps[k])"
DRAWN = "() => (" + HOOKS + ")().every(h => h && h.drawn > 0)"
SELECTED = "() => (" + HOOKS + ")().map(h => h.selectedIndex())"


def _test_number(page) -> int:
    return int(page.locator('input[aria-label="Test example #"]').input_value())


def test_two_maps_two_decoders_and_a_click_selects_the_point_on_both(browser, server):
    page = new_page(browser, 1024, 768)
    try:
        page.goto(server.url + "/compare")
        wait_idle(page)
        page.get_by_text("B, aligned to A").wait_for()
        page.wait_for_function(DRAWN)
        assert page.locator("[data-testid=vae-latent-map]").count() == 2
        first = _test_number(page)
        assert page.evaluate(SELECTED) == [first, first]  # the same test point ringed on both maps
        page.get_by_text("Alignment residual").wait_for()
        for name in ("A", "B"):  # the same z, decoded by both models
            img = page.locator("[data-testid=stImage]").filter(has_text=f"decoded by {name}: E[x | z]").locator("img")
            assert img.count() == 1 and img.evaluate("i => i.complete && i.naturalWidth > 0")
        # both maps show one data box: a test point and its aligned counterpart sit at the same place in each
        scales = page.evaluate("() => (" + HOOKS + ")().map(h => [h.scale(), h.visibleRange()])")
        assert scales[0] == scales[1]
        save_screenshot(page, "compare_1024x768.png")

        # hover a point on B's map (the tooltip names its test #), then click it
        b_map = page.locator("[data-testid=vae-latent-map]").nth(1)
        b_map.scroll_into_view_if_needed()
        points = page.evaluate(
            "s => window.__vaeMaps.compare_map_b.points().filter(p => p.testIndex !== s).map(p => [p.x, p.y])",
            first,
        )
        assert len(points) > 100
        target = None
        for x, y in points[::7]:
            page.mouse.move(x, y)
            tip = b_map.locator("[data-testid=vae-map-tip]")
            page.wait_for_function("t => t.style.visibility === 'visible'", arg=tip.element_handle())
            m = re.search(r"test #(\d+)", tip.inner_text())
            if m and int(m.group(1)) != first:
                target = (x, y, int(m.group(1)))
                break
        assert target is not None, "no other point to click"
        _, _, n = target
        # hovering asked the server for images (a rerun per batch): click once the page has settled, where
        # the point is then (a rerun above the map can move it)
        wait_idle(page)
        x, y = page.evaluate(
            "n => { const p = window.__vaeMaps.compare_map_b.points().find(p => p.testIndex === n);"
            " return [p.x, p.y]; }",
            n,
        )
        page.mouse.click(x, y)
        page.wait_for_function(  # the input is replaced while the page reruns: null meanwhile
            "n => (e => e !== null && e.value === String(n))"
            "(document.querySelector('input[aria-label=\\'Test example #\\']'))",
            arg=n,
            timeout=120_000,
        )
        wait_idle(page)
        assert _test_number(page) == n
        assert page.evaluate(SELECTED) == [n, n]  # ringed on A's map as on B's
        assert page.evaluate("() => (" + HOOKS + ")().map(h => h.star())") == [None, None]  # no z on these maps
        page.get_by_text(f"Test example #{n} in both").wait_for()
        assert page.get_by_text(f"A · test #{n}").count() == 1 and page.get_by_text(f"B · test #{n}").count() == 1
    finally:
        page.close()
