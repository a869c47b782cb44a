"""Issue 12.6: the lab pages draw their charts with Vega-Lite, so opening one never fetches Streamlit's
4.6 MB Plotly chunk (the largest part of a lab page's load in the browser). Labs 1, 4, 5 and 6 (line
charts, bars, label maps, faceted histograms, colour-scaled maps) open from the shipped model's runs;
each chart must be drawn, the Plotly chunk never requested.
"""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from tests.harness.browser import StreamlitServer, new_page, save_screenshot, wait_idle
from vae_core.cache import default_checkpoint_path

pytestmark = pytest.mark.browser

# page -> its charts (Vega-Lite) shown at once
PAGES = {"lab-elbo": 2, "lab-beta": 5, "lab-aggregate": 3, "lab-ae": 2}
DRAWN_JS = """n => {
  const charts = [...document.querySelectorAll('[data-testid=stMain] [data-testid=stVegaLiteChart]')];
  return charts.length === n && charts.every(c => c.querySelector('canvas, svg.marks'));
}"""


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    shipped = default_checkpoint_path()
    if not os.path.exists(shipped):
        pytest.skip("the shipped default checkpoint is not present")
    folder = tmp_path_factory.mktemp("lab_ckpts")
    for f in glob.glob(os.path.splitext(shipped)[0] + ".*"):  # the checkpoint and its stored reports
        shutil.copy(f, folder)
    shutil.copytree(os.path.join(os.path.dirname(shipped), "lab"), folder / "lab")  # reports are written here
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": str(folder)}, timeout=300) as s:
        yield s


@pytest.mark.parametrize("slug", list(PAGES))
def test_lab_page_draws_its_charts_without_the_plotly_chunk(browser, server, slug):
    page = new_page(browser, 1024, 768)
    try:
        page.goto(f"{server.url}/{slug}")
        wait_idle(page)
        page.wait_for_function(DRAWN_JS, arg=PAGES[slug], timeout=300_000)
        assert page.locator("[data-testid=stException]").count() == 0
        assert page.locator("[data-testid=stPlotlyChart]").count() == 0
        scripts = page.evaluate("() => performance.getEntriesByType('resource').map(r => r.name)")
        assert any("/static/js/" in s for s in scripts), scripts  # resource timing sees the frontend's chunks
        assert not [s for s in scripts if "PlotlyChart" in s]
        save_screenshot(page, f"{slug}-1024.png")  # for review at projector width
    finally:
        page.close()


def test_the_lab_pages_element_code_is_fetched_while_the_explorer_is_idle(browser, server):
    """app.components.prefetch: on the explorer, once idle, the browser imports the element code the lab
    pages need (Vega-Lite, tables, LaTeX, ...); lab 1 opened afterwards fetches none of it again."""
    from app.components.prefetch import chunk_files

    page = new_page(browser, 1024, 768)
    try:
        page.goto(server.url + "/")
        wait_idle(page)
        page.wait_for_function("() => globalThis.__vaePrefetch && globalThis.__vaePrefetch.finished", timeout=300_000)
        state = page.evaluate("globalThis.__vaePrefetch")
        assert state["failed"] == [] and sorted(state["loaded"]) == sorted(chunk_files())
        before = page.evaluate("() => performance.getEntriesByType('resource').length")
        page.click('[data-testid=stSidebarNav] a[href$="/lab-elbo"]')
        page.wait_for_function(DRAWN_JS, arg=PAGES["lab-elbo"], timeout=300_000)
        wait_idle(page)
        after = page.evaluate("n => performance.getEntriesByType('resource').slice(n).map(r => r.name)", before)
        again = [u for u in after if any(u.endswith("/" + f) for f in chunk_files())]
        assert again == [], again
        assert page.locator("[data-testid=stException]").count() == 0
    finally:
        page.close()
