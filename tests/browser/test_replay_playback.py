"""The Training replay page in Chromium: Play advances the epoch in the browser and Pause stops it;
the page's scrubber and numbers follow where the player stopped, and the scrubber moves the player;
hovering the map names a test point; a click on the ELBO chart goes to that epoch."""

from __future__ import annotations

import os
import re

import pytest

from tests.harness.browser import StreamlitServer, new_page, save_screenshot, wait_idle
from vae_core.cache import default_checkpoint_path
from vae_core.replay import load_replay, replay_path

pytestmark = pytest.mark.browser

READY = "[data-testid=vae-replay][data-ready='1']"


def _epoch(page) -> int:
    """The player's own epoch label ("epoch 12")."""
    return int(re.fullmatch(r"epoch (\d+)", page.locator("[data-testid=vae-replay-epoch]").text_content()).group(1))


def _metric_epoch(page) -> int:
    """The epoch of the page's numbers (the server's scrubber): "Test ELBO, epoch 12"."""
    label = page.locator("[data-testid=stMetricLabel]").first.text_content()
    return int(re.search(r"epoch (\d+)", label).group(1))


@pytest.mark.parametrize("size", [(1024, 768), (1280, 900)])
def test_play_pause_scrub_and_hover(browser, size):
    rpath = replay_path(default_checkpoint_path())
    if not os.path.exists(rpath):
        pytest.skip("the shipped model's replay is not present")
    r = load_replay(rpath)
    with StreamlitServer("app/main.py", timeout=300) as server:
        page = new_page(browser, *size)
        try:
            page.goto(server.url + "/replay")
            page.locator(READY).wait_for(timeout=300_000)
            wait_idle(page)
            assert _epoch(page) == _metric_epoch(page) == int(r.epochs[0])
            play = page.locator("[data-testid=vae-replay-play]")
            play.click()
            page.wait_for_function(
                "() => window.__vaeReplay && window.__vaeReplay.epoch >= 5", timeout=120_000, polling=50
            )
            play.click()  # Pause
            assert play.text_content() == "Play"
            stopped = _epoch(page)
            page.wait_for_timeout(1500)
            assert _epoch(page) == stopped >= 5
            page.wait_for_function(  # the server's scrubber and numbers follow the player
                "(e) => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
                ".some(m => m.textContent.includes('epoch ' + e))",
                arg=stopped,
                timeout=120_000,
            )
            wait_idle(page)
            assert _epoch(page) == stopped  # and the rerun does not move the player
            i = list(r.epochs).index(stopped)
            readout = page.locator("[data-testid=vae-replay-readout]").text_content()
            assert f"ELBO {r.elbo[i]:.2f}".replace("-", "\u2212") in readout

            page.locator("[data-testid=stSlider] input[type=range]").first.focus()  # the server's scrubber
            page.keyboard.press("End")
            page.wait_for_function(
                "(e) => window.__vaeReplay.epoch === e", arg=int(r.epochs[-1]), timeout=120_000, polling=50
            )
            wait_idle(page)
            assert _metric_epoch(page) == int(r.epochs[-1])

            curves = page.locator("[data-testid=vae-replay-curves]")
            box = curves.bounding_box()
            curves.click(position={"x": box["width"] * 0.45, "y": box["height"] / 2})
            page.wait_for_function("() => window.__vaeReplay.epoch < 90", timeout=120_000, polling=50)
            clicked = _epoch(page)
            page.wait_for_function(
                "(e) => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
                ".some(m => m.textContent.includes('epoch ' + e))",
                arg=clicked,
                timeout=120_000,
            )

            canvas = page.locator("[data-testid=vae-replay-map]")
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            tip = page.locator("[data-testid=vae-replay-tip]")
            for fx in (0.5, 0.45, 0.55, 0.4, 0.6):  # somewhere near the middle there is a point
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.45)
                page.wait_for_timeout(200)
                if tip.is_visible():
                    break
            assert re.fullmatch(r"test #\d+ · label \d", tip.text_content())
            assert page.locator("[data-testid=stException]").count() == 0
            save_screenshot(page, f"replay_{size[0]}x{size[1]}.png")
        finally:
            page.close()


def test_switching_to_the_lab_beta_10_replay_redraws_the_player(browser):
    """ "Replay of" another model sends that replay: the player's epochs, numbers and KL axis are its own
    (the β = 10 model ends with collapsed dimensions)."""
    from vae_core.cache import default_cache_dir
    from vae_core.replay import with_replays

    lab = [
        r
        for r in map(load_replay, map(replay_path, with_replays(os.path.join(default_cache_dir(), "lab"))))
        if r.meta["train_config"]["beta"] == 10.0
        and not r.meta["train_config"]["warmup_epochs"]
        and not r.meta["train_config"]["free_bits"]
    ]
    if not lab:
        pytest.skip("the lab's β = 10 replay is not present")
    (r,) = lab
    alive = int((r.kl_per_dim[-1] >= 0.01).sum())
    with StreamlitServer("app/main.py", timeout=300) as server:
        page = new_page(browser, 1280, 900)
        try:
            page.goto(server.url + "/replay")
            page.locator(READY).wait_for(timeout=300_000)
            wait_idle(page)
            page.locator("[data-testid=stSelectbox]").filter(has_text="Replay of").click()
            page.get_by_role("option").filter(has_text=re.compile(r"β = 10,(?!.*(warm-up|free bits))")).click()
            wait_idle(page)
            page.locator("[data-testid=stSlider] input[type=range]").first.focus()
            page.keyboard.press("End")
            page.wait_for_function(
                "(e) => window.__vaeReplay.epoch === e", arg=int(r.epochs[-1]), timeout=120_000, polling=50
            )
            page.locator(READY).wait_for(timeout=120_000)
            readout = page.locator("[data-testid=vae-replay-readout]").text_content()
            assert f"{alive} of 16 dimensions alive" in readout and alive < 16
            assert f"ELBO {r.elbo[-1]:.2f}".replace("-", "\u2212") in readout
            assert page.locator("[data-testid=stException]").count() == 0
            save_screenshot(page, "replay_beta10_1280x900.png")
        finally:
            page.close()
