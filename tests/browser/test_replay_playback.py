"""The Training replay page in Chromium: Play advances the epoch in the browser, Pause stops it."""

from __future__ import annotations

import os
import re

import pytest

from tests.harness.browser import StreamlitServer, new_page, save_screenshot, wait_idle
from vae_core.cache import default_checkpoint_path
from vae_core.replay import replay_path

pytestmark = pytest.mark.browser


def _current(page):
    """Plotly's slider current-value label ("epoch 12")."""
    return page.locator("text.slider-label").filter(has_text=re.compile(r"^epoch \d")).first


def _epoch(page) -> int:
    text = _current(page).text_content()
    return int(re.search(r"epoch (\d+)", text).group(1))


def test_play_advances_the_epoch_and_pause_stops_it(browser):
    if not os.path.exists(replay_path(default_checkpoint_path())):
        pytest.skip("the shipped model's replay is not present")
    with StreamlitServer("app/main.py", timeout=300) as server:
        page = new_page(browser, 1280, 900)
        try:
            page.goto(server.url + "/replay")
            _current(page).wait_for(timeout=300_000)
            wait_idle(page)
            assert _epoch(page) == 1
            page.locator("g.updatemenu-button", has_text="Play").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('text.slider-label')].some(e => "
                "/^epoch (\\d+)/.test(e.textContent) && +e.textContent.match(/^epoch (\\d+)/)[1] >= 5)",
                timeout=120_000,
            )
            page.locator("g.updatemenu-button", has_text="Pause").click()
            page.wait_for_timeout(1000)
            stopped = _epoch(page)
            page.wait_for_timeout(1500)
            assert _epoch(page) == stopped >= 5
            assert page.locator("[data-testid=stException]").count() == 0
            save_screenshot(page, "replay_paused.png")
        finally:
            page.close()
