"""Explorer hover and the Upload / draw page in headless Chromium against `streamlit run app/main.py`
(the shipped model).

What AppTest cannot do: hover the canvas map (the image preview is drawn in the browser), draw on
the canvas component, and hit the browser-side upload limit that streamlit_config.toml sets
(server.maxUploadSize = 5 MB).
"""

from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest
from PIL import Image

from vae_core.cache import default_checkpoint_path
from vae_core.checkpoints import read_metadata
from vae_core.data import eval_targets, load_dataset

pytestmark = pytest.mark.browser

MAP_TRACE_JS = """name => { const m = window.__vaeMaps && window.__vaeMaps.upload_map;
  const o = m && m.overlayMarks().find(d => d.name === name); return o ? [o.x, o.y] : null; }"""


@pytest.fixture(scope="module")
def app_and_browser(browser):
    """`browser` is the session's Chromium (tests/browser/conftest.py): one Playwright per process."""
    from tests.harness.browser import StreamlitServer

    if not os.path.exists(default_checkpoint_path()):
        pytest.skip("the shipped default checkpoint is not present")
    with StreamlitServer("app/main.py") as server:
        yield server, browser


@pytest.fixture(scope="module")
def upload_page(app_and_browser):
    from tests.harness.browser import new_page

    server, browser = app_and_browser
    page = new_page(browser, 1400, 1600)
    page.goto(server.url + "/upload")
    page.get_by_text("Upload or draw").first.wait_for(timeout=300_000)
    yield page
    page.close()


def test_hovering_a_map_point_shows_its_image(app_and_browser):
    from tests.harness.browser import map_points, new_page, wait_for_map

    server, browser = app_and_browser
    page = new_page(browser, 1400, 1100)
    try:
        page.goto(server.url + "/")
        wait_for_map(page)  # the canvas map is drawn, and the sprite sheet of its thumbnails is registered:
        page.wait_for_function(
            "() => globalThis.__vaeSprites && globalThis.__vaeSprites.get('vae-latent-map')"
            " && globalThis.__vaeSprites.get('vae-latent-map').img.complete",
            timeout=300_000,
        )
        text = page.locator("[data-testid=hover-preview-text]")  # locators pierce the shadow root
        canvas = page.locator("[data-testid=hover-preview-canvas]")
        tip = page.locator("[data-testid=vae-map-tip]")
        points = map_points(page, spacing_px=12)  # isolated points: the hover cannot pick a neighbour
        tc = read_metadata(default_checkpoint_path())["train_config"]
        targets = eval_targets(load_dataset(tc["dataset"]).x_test, tc["binarize"])  # what the map shows
        for x, y, want in (points[3], points[11]):
            page.mouse.move(x, y)
            page.mouse.move(x + 1, y)
            deadline = time.monotonic() + 300  # a hang guard
            while not re.fullmatch(r"test #\d+ · label \d+", text.inner_text()):
                assert time.monotonic() < deadline, "no hover preview"
                time.sleep(0.1)
            idx = int(canvas.get_attribute("data-test-index"))
            assert idx == want and text.inner_text().startswith(f"test #{idx} ")
            assert tip.is_visible() and tip.inner_text().startswith(f"test #{idx} "), "the map's own tooltip"
            shown = np.array(
                canvas.evaluate("c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"),
                np.float64,
            )
            np.testing.assert_allclose(
                shown.reshape(28, 28, 4)[..., 0], np.round(targets[idx, 0].numpy() * 255), atol=1
            )
    finally:
        page.close()


def test_drawing_a_digit_encodes_it_and_places_it_on_the_map(upload_page):
    page = upload_page
    page.get_by_role("tab", name="Draw").click()
    canvas = page.locator("[data-testid=draw-canvas-surface]")
    canvas.wait_for(timeout=300_000)
    box = canvas.bounding_box()
    x0, y0, s = box["x"], box["y"], box["width"]
    page.mouse.move(x0 + 0.55 * s, y0 + 0.15 * s)  # a slanted "1"
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x0 + (0.55 - 0.1 * i / 20) * s, y0 + (0.15 + 0.7 * i / 20) * s)
    page.mouse.up()
    page.get_by_text("Your image (drawing)").wait_for(timeout=300_000)
    page.wait_for_function(MAP_TRACE_JS, arg="your image μ(x)", timeout=300_000)
    xy = page.evaluate(MAP_TRACE_JS, "your image μ(x)")
    assert xy is not None and all(np.isfinite(xy))
    page.get_by_role("button", name="Clear").click()
    page.get_by_text("Upload an image or draw a digit").wait_for(timeout=300_000)


def test_an_upload_over_the_configured_limit_is_refused_with_a_message(upload_page, tmp_path):
    page = upload_page
    page.get_by_role("tab", name="Upload a PNG / JPEG").click()
    noise = np.random.default_rng(0).integers(0, 256, size=(1600, 1600, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(noise).save(path, format="PNG", compress_level=0)  # ~7.7 MB of incompressible pixels
    assert os.path.getsize(path) > 5 * 2**20
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.get_by_text("File must be 5.0MB or smaller.").wait_for(timeout=300_000)
    # and a small good image still works
    small = io.BytesIO()
    a = np.full((56, 56), 255, np.uint8)
    a[8:48, 24:32] = 0
    Image.fromarray(a).save(small, format="PNG")
    (tmp_path / "one.png").write_bytes(small.getvalue())
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "one.png"))
    page.get_by_text("Your image (one.png)").wait_for(timeout=300_000)
