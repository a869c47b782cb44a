"""The explorer on a projector: at 1024×768, 1280×720 and 1920×1080 (app/style.py).

Each size is checked by geometry, not by eye: no image covers text beside it, no button or metric
label is cut short, no horizontal scrollbar, and the first latent slider starts on the first screen.
Each run writes its screenshots to tests/browser/screenshots/layout/ (git-ignored); the reviewed
record is docs/screenshots/ (palette PNGs copied from a run).
"""

from __future__ import annotations

import os

import pytest

from tests.harness.browser import REPO, StreamlitServer, new_page, slider, wait_for_frames, wait_idle
from vae_core.cache import default_checkpoint_path

pytestmark = pytest.mark.browser

SIZES = [(1024, 768), (1280, 720), (1920, 1080)]
SHOTS = os.path.join(REPO, "tests", "browser", "screenshots", "layout")  # git-ignored; see docs/screenshots/
MAX_SHOTS = 3  # screens per size: the first (what a lecturer sees on opening) and the breakdown below

# Every text node's boxes against every image's box, except the image's own caption. Text in
# components' shadow roots (map legend, sliders) is not walked: those lay themselves out.
OVERLAPS = """() => {
  const imgs = [...document.querySelectorAll('[data-testid=stImage] img')]
    .map(im => ({im, r: im.getBoundingClientRect(), own: im.closest('[data-testid=stImage]')}))
    .filter(o => o.r.width > 0 && o.r.height > 0);
  const out = [], walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (!n.textContent.trim() || !n.parentElement || n.parentElement.closest('style, script')) continue;
    // a collapsed expander keeps its text in the DOM, laid out but not shown: not an overlap
    if (n.parentElement.closest('details:not([open])') || !n.parentElement.checkVisibility()) continue;
    const range = document.createRange(); range.selectNodeContents(n);
    for (const t of range.getClientRects()) {
      if (t.width < 1 || t.height < 1) continue;
      for (const o of imgs) {
        if (o.own.contains(n)) continue;
        const w = Math.min(t.right, o.r.right) - Math.max(t.left, o.r.left);
        const h = Math.min(t.bottom, o.r.bottom) - Math.max(t.top, o.r.top);
        if (w > 1 && h > 1) out.push(n.textContent.trim().slice(0, 40));
      }
    }
  }
  return out;
}"""

# Labels Streamlit cuts with an ellipsis when they do not fit: buttons, download buttons, metrics.
CUT_LABELS = """() => [...document.querySelectorAll(
    '.stButton button, .stDownloadButton button, [data-testid=stMetricLabel] .stMarkdownEllipsis')]
  .filter(e => e.clientWidth > 0)
  .flatMap(e => [e, ...e.querySelectorAll('.stMarkdownEllipsis, p')])
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.trim())"""

H_SCROLL = """() => { const m = document.querySelector('[data-testid=stMain]'), d = document.documentElement;
  return [m.scrollWidth - m.clientWidth, d.scrollWidth - d.clientWidth]; }"""


@pytest.fixture(scope="module")
def app_server(browser):
    if not os.path.exists(default_checkpoint_path()):
        pytest.skip(f"the shipped default checkpoint {default_checkpoint_path()} is not present")
    with StreamlitServer("app/main.py", env={"VAE_DEBUG_HOOKS": "1"}) as server:
        yield server


def screenshots(page, name: str, height: int) -> list[str]:
    """The page a screen at a time (Streamlit scrolls its main section, not the document), saved as
    64-colour palette PNGs: a few tens of kB each."""
    from PIL import Image

    os.makedirs(SHOTS, exist_ok=True)
    total = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    paths = []
    for i, y in enumerate(range(0, total, height - 80)[:MAX_SHOTS]):
        page.evaluate("y => document.querySelector('[data-testid=stMain]').scrollTo(0, y)", y)
        page.wait_for_timeout(300)
        path = os.path.join(SHOTS, f"{name}_{i}.png")
        page.screenshot(path=path)
        Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)
        paths.append(path)
    page.evaluate("document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
    return paths


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_explorer_reads_at_projector_sizes(browser, app_server, size):
    w, h = size
    page = new_page(browser, w, h)
    try:
        page.goto(app_server.url + "/explorer")  # the address a lecturer types: not "Page not found"
        wait_for_frames(page, 1, timeout_ms=300_000)
        page.wait_for_selector("[data-testid=stMetric]")  # the ELBO breakdown, the last panel
        wait_idle(page)
        assert page.get_by_text("Page not found").count() == 0
        # the sliders start on the first screen
        top = page.locator(slider(0)).bounding_box()
        assert top is not None and 0 <= top["y"] and top["y"] + top["height"] <= h, (top, h)
        shots = screenshots(page, f"explorer_{w}x{h}", h)
        assert shots and all(os.path.getsize(p) < 400_000 for p in shots)
        assert page.evaluate(OVERLAPS) == []
        assert page.evaluate(CUT_LABELS) == []
        assert max(page.evaluate(H_SCROLL)) <= 0, "a horizontal scrollbar"
        assert page.locator(".stImage img").count() >= 4  # the checks above had images to check
    finally:
        page.close()


def test_the_root_address_still_opens_the_explorer(browser, app_server):
    page = new_page(browser, 1280, 720)
    try:
        page.goto(app_server.url + "/")
        wait_for_frames(page, 1, timeout_ms=300_000)
        wait_idle(page)  # the run has finished: app/style.py's CSS (which hides the alias) has arrived
        assert page.get_by_text("Page not found").count() == 0
        nav = page.locator("[data-testid=stSidebarNav]").inner_text()
        assert nav.count("Latent explorer") == 1, nav  # "/explorer" is not listed twice
    finally:
        page.close()
