"""A shared link in headless Chromium against `streamlit run app/main.py`: opening
/explorer?model=<file name>&z=... shows that model with the sliders at those values, and moving z
keeps the address bar in step (app/url_state.py)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.harness.browser import StreamlitServer, new_page, slider_values, wait_for_frames

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory, make_seeded_checkpoints):
    """The app over a checkpoint folder of two seeded 8x8 models (the embedded digits' shape)."""
    folder = tmp_path_factory.mktemp("link_ckpts")
    make_seeded_checkpoints(folder, [("a_first", (1, 8, 8), "bernoulli"), ("b_linked", (1, 8, 8), "bernoulli")])
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": str(folder)}) as s:
        yield s


def _close_page_not_found(page) -> None:
    """Before app/main.py served the explorer at /explorer too, Streamlit answered that address with a
    "Page not found" dialog over the explorer (the default page); it leaves the page inert."""
    if page.get_by_text("Page not found").count():
        page.keyboard.press("Escape")
        page.get_by_text("Page not found").wait_for(state="hidden")


def test_a_link_opens_its_model_with_the_sliders_at_its_z(browser, server):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + "/explorer?model=b_linked.safetensors&z=1.5,-0.5,0.25,-2")
        wait_for_frames(page, 1)
        _close_page_not_found(page)
        page.get_by_text("Sliders: from the link").wait_for()
        assert slider_values(page) == pytest.approx([1.5, -0.5, 0.25, -2.0], abs=1e-9)
        picker = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first  # the sidebar's model
        assert "b_linked" in picker.evaluate(
            "e => e.innerText + [...e.querySelectorAll('input')].map(i => i.value)"
            ".join(' ') + (e.querySelector('[title]') || {}).title"
        )
        q = parse_qs(urlparse(page.url).query)
        assert q == {"model": ["b_linked.safetensors"], "z": ["1.5,-0.5,0.25,-2"]}
        page.get_by_role("button", name="z = 0").click()  # a set: the address bar follows
        page.wait_for_function("() => location.search.includes('z=0%2C0%2C0%2C0')")
        assert re.search(r"model=b_linked\.safetensors", page.url)
    finally:
        page.close()


def test_a_link_to_a_path_gets_one_message(browser, server):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + "/explorer?model=..%2F..%2Fetc%2Fpasswd&z=1")
        wait_for_frames(page, 1)
        page.get_by_text("link's model was not opened").wait_for()
        page.wait_for_function("() => location.search.includes('a_first')")
        assert page.get_by_text("link's model was not opened").count() == 1
        assert parse_qs(urlparse(page.url).query)["model"] == ["a_first.safetensors"]  # the default, in the URL
    finally:
        page.close()
