"""Compare two models (issue 12 item 13) in headless Chromium at 1024x768, against `streamlit run
app/main.py` over a folder of two tiny digits models trained here: both maps and both decoded images
appear, and a click on a point of B's map selects that test example on both maps and in both panels."""

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


# Per plotly map on the page: the test # and position of the ring ("selected" trace), and the position of
# the point that carries that test # (customdata[0], app.views.map_figure) in the label traces.
RINGS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const data = gd._fullData;  // decoded arrays (gd.data may hold plotly's base64 'bdata' form)
  const ring = data.find(t => t.name === 'selected');
  if (!ring) return null;
  let best = -1, dmin = Infinity;
  for (const t of data) {
    if (!t.customdata) continue;
    for (let i = 0; i < t.customdata.length; i++) {
      const d = Math.hypot(t.x[i] - ring.x[0], t.y[i] - ring.y[0]);
      if (d < dmin) { dmin = d; best = t.customdata[i][0]; }
    }
  }
  return dmin < 1e-9 ? best : -1;
})"""


# Page positions of every 7th label point inside a plotly map's plot area, from the trace data through the
# axes' data -> pixel maps (whether plotly draws the points as SVG or by WebGL).
POINTS = """gd => {
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const inside = (p, a) => p > a._offset + 5 && p < a._offset + a._length - 5;
  const out = [];
  for (const t of gd._fullData) {
    if (!t.customdata) continue;
    for (let i = 0; i < t.x.length; i += 7) {
      const px = xa._offset + xa.l2p(t.x[i]), py = ya._offset + ya.l2p(t.y[i]);
      if (inside(px, xa) && inside(py, ya)) out.push([box.left + px, box.top + py]);
    }
  }
  return out;
}"""


def _test_number(page) -> int:
    return int(page.locator('input[aria-label="Test example #"]').input_value())


def test_two_maps_two_decoders_and_a_click_selects_the_point_on_both(browser, server):
    page = new_page(browser, 1024, 768)
    try:
        page.goto(server.url + "/compare")
        wait_idle(page)
        page.get_by_text("B, aligned to A").wait_for()
        maps = page.locator(".js-plotly-plot")
        assert maps.count() == 2
        first = _test_number(page)
        assert page.evaluate(RINGS) == [first, first]  # the same test point ringed on both maps
        page.get_by_text("Alignment residual").wait_for()
        for name in ("A", "B"):  # the same z, decoded by both models
            img = page.locator("[data-testid=stImage]").filter(has_text=f"decoded by {name}: E[x | z]").locator("img")
            assert img.count() == 1 and img.evaluate("i => i.complete && i.naturalWidth > 0")
        save_screenshot(page, "compare_1024x768.png")

        # hover a point on B's map (plotly shows its test #), then click it
        b_map = maps.nth(1)
        b_map.scroll_into_view_if_needed()
        assert b_map.locator(".scatterlayer .point").count() > 100  # its points, drawn as SVG
        target = None
        for x, y in b_map.evaluate(POINTS):
            page.mouse.move(x, y)
            label = page.locator(".hoverlayer .hovertext").first
            label.wait_for()
            n = int(re.search(r"test #(\d+)", label.text_content()).group(1))  # SVG text: no inner_text
            if n != first:
                target = (x, y, n)
                break
        assert target is not None, "no other point to click"
        x, y, n = target
        page.mouse.click(x, y)
        page.wait_for_function(  # the input is replaced while the page reruns: null meanwhile
            "n => (e => e !== null && e.value === String(n))"
            "(document.querySelector('input[aria-label=\\'Test example #\\']'))",
            arg=n,
            timeout=120_000,
        )
        wait_idle(page)
        assert _test_number(page) == n
        assert page.evaluate(RINGS) == [n, n]  # ringed on A's map as on B's
        page.get_by_text(f"Test example #{n} in both").wait_for()
        assert page.get_by_text(f"A · test #{n}").count() == 1 and page.get_by_text(f"B · test #{n}").count() == 1
    finally:
        page.close()
