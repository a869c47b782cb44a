"""Latent arithmetic and click-picked interpolation endpoints (issue 12 item 11) in headless Chromium
against `streamlit run app/main.py` with the shipped model, at a projector's 1024×768.

What AppTest cannot show: the page laid out (no exception, no cut-off button label, no horizontal
scrollbar), a real slider key press moving z, and a real click on the traversal page's canvas map."""

from __future__ import annotations

import os
import re

import pytest

from tests.harness.browser import SCREENSHOT_DIR, StreamlitServer, new_page, wait_idle
from vae_core.cache import default_checkpoint_path

pytestmark = pytest.mark.browser

# Labels Streamlit cuts with an ellipsis when they do not fit (as tests/browser/test_layout.py checks).
CUT_LABELS = """() => [...document.querySelectorAll('.stButton button, .stDownloadButton button')]
  .filter(e => e.clientWidth > 0)
  .flatMap(e => [e, ...e.querySelectorAll('.stMarkdownEllipsis, p')])
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.trim())"""
H_SCROLL = """() => { const m = document.querySelector('[data-testid=stMain]');
  return m.scrollWidth - m.clientWidth; }"""


@pytest.fixture(scope="module")
def app_server(browser):
    if not os.path.exists(default_checkpoint_path()):
        pytest.skip(f"the shipped default checkpoint {default_checkpoint_path()} is not present")
    with StreamlitServer("app/main.py") as server:
        yield server


def _no_error(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0
    errors = page.locator("[data-testid=stAlertContentError]")
    assert errors.count() == 0, errors.all_inner_texts()


def test_the_arithmetic_page_at_1024x768(browser, app_server):
    page = new_page(browser, 1024, 768)
    try:
        page.goto(app_server.url + "/arithmetic")
        page.get_by_text("Attribute direction").first.wait_for()
        wait_idle(page)
        _no_error(page)
        assert page.locator("[data-testid=stImage] img").count() >= 10 + 1 + 1 + 4  # means, z, strip, analogy
        assert page.evaluate(CUT_LABELS) == [] and page.evaluate(H_SCROLL) <= 0
        os.makedirs(SCREENSHOT_DIR, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOT_DIR, "arithmetic_1024x768.png"), full_page=True)
        caption = page.get_by_text(re.compile(r"^z = m_0 \+ α·d, d = m_1 − m_0"))
        assert "α = 1," in caption.inner_text()
        thumb = page.get_by_role("slider", name="α")  # one key press: one step of 0.25
        thumb.focus()
        page.keyboard.press("ArrowRight")
        page.get_by_text(re.compile(r"α = 1\.25, z = ")).wait_for()
        wait_idle(page)
        _no_error(page)
    finally:
        page.close()


def test_clicking_the_traversal_map_sets_the_start(browser, app_server):
    """A real click on the traversal page's canvas map makes that point the start; the "start" mark
    then sits on it."""
    hook = "window.__vaeMaps && window.__vaeMaps.traversal_map"
    page = new_page(browser, 1024, 768)
    try:
        page.goto(app_server.url + "/traversal")
        page.wait_for_function(f"() => {hook} && {hook}.drawn > 0")
        wait_idle(page)
        start = page.get_by_label("From test example #")
        end = page.get_by_label("To test example #")
        before = (start.input_value(), end.input_value())
        page.locator("[data-testid=vae-map-canvas]").first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        h = page.viewport_size["height"]
        points = page.evaluate(
            f"""() => {{ const all = {hook}.points();
              return all.filter(p => all.every(q => q === p || Math.hypot(p.x - q.x, p.y - q.y) >= 12))
                        .map(p => [p.x, p.y, p.testIndex]); }}"""
        )
        x, y, idx = next(p for p in points if str(p[2]) not in before and 60 < p[1] < h - 20)
        page.mouse.click(x, y)
        page.wait_for_function(
            "([want]) => [...document.querySelectorAll('input')].some(e => e.getAttribute('aria-label') "
            "=== 'From test example #' && e.value === want)",
            arg=[str(idx)],
        )
        wait_idle(page)
        assert start.input_value() == str(idx) and end.input_value() == before[1]
        _no_error(page)
        page.wait_for_function(  # the start mark is drawn where the clicked point is
            f"([x, y]) => {hook}.overlayMarks().some(m => m.text === 'start' && Math.hypot(m.x - x, m.y - y) < 2)",
            arg=[x, y],
        )
        os.makedirs(SCREENSHOT_DIR, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOT_DIR, "traversal_map_1024x768.png"))
    finally:
        page.close()


def test_the_traversal_downloads_are_made_when_clicked(browser, app_server):
    """The traversal page's PNG and GIFs are callables run on the click (not encoded on every run): each
    button still downloads its file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(300_000)
    try:
        page.goto(app_server.url + "/traversal")
        page.wait_for_function(
            "() => window.__vaeMaps && window.__vaeMaps.traversal_map && window.__vaeMaps.traversal_map.drawn > 0"
        )
        wait_idle(page)
        for label, name, magic in (
            ("traversal (GIF)", "traversal.gif", b"GIF89a"),
            ("interpolation (GIF)", "interpolation.gif", b"GIF89a"),
            ("traversal grid (PNG)", "traversal.png", b"\x89PNG"),
        ):
            with page.expect_download() as d:
                page.get_by_role("button", name=label).click()
            assert d.value.suggested_filename == name
            with open(d.value.path(), "rb") as f:
                assert f.read(6).startswith(magic)
        _no_error(page)
    finally:
        page.close()
