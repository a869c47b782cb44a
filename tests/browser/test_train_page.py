"""The Train page in a browser: the sidebar shows the model just trained at once, and a second click
on the same config says it is already trained (AppTest cannot see the first: the stale picker
value lives in the browser)."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.harness.browser import StreamlitServer, new_page, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory, make_seeded_checkpoints):
    folder = tmp_path_factory.mktemp("train_cache")
    make_seeded_checkpoints(folder, [("old", (1, 8, 8), "bernoulli")])  # what the sidebar shows first
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": str(folder)}) as s:
        s.folder = folder
        yield s


def sidebar_model(page) -> str:
    """What the sidebar picker shows (its text, or its input's value where it is searchable)."""
    return page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.evaluate(
        "e => e.textContent + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')"
    )


def test_trained_model_shows_in_the_sidebar_and_a_second_click_says_already_trained(browser, server):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + "/train")
        wait_idle(page)
        assert "old" in sidebar_model(page)
        page.locator("[data-testid=stMain] [data-testid=stSelectbox]").first.click()
        page.get_by_role("option", name="digits", exact=True).click()
        for label, value in (("Hidden widths", "8"), ("Latent dim", "2"), ("Epochs", "1"), ("Seed", "5")):
            box = page.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Tab")
        page.get_by_role("button", name="Train (or load if cached)").click()
        page.get_by_text("Trained and saved").wait_for(timeout=300_000)
        wait_idle(page)
        trained = [f for f in os.listdir(server.folder) if f.startswith("digits_") and f.endswith(".safetensors")]
        assert len(trained) == 1
        assert trained[0][:-12][:20] in sidebar_model(page), sidebar_model(page)  # at once, no navigation
        page.get_by_role("button", name="Train (or load if cached)").click()
        page.get_by_text("Already trained: opened").wait_for(timeout=120_000)
        wait_idle(page)  # the sidebar's rerun after opening the model: a click during it can be lost
        assert trained[0][:-12][:20] in sidebar_model(page)
        link = page.get_by_role("link", name="Open it in the explorer")
        for _ in range(3):  # the link leads to the explorer (clicked again only if a rerun replaced it)
            link.click()
            try:
                page.wait_for_url("**/explorer", timeout=60_000)
                break
            except PlaywrightTimeout:
                assert link.count() == 1, "the link is gone and the page did not change"
        page.wait_for_url("**/explorer", timeout=1_000)
        page.locator("h1").filter(has_text="Latent explorer").wait_for(timeout=120_000)
        wait_idle(page)
        assert page.get_by_text("Page not found").count() == 0
        assert trained[0][:-12][:20] in sidebar_model(page)
    finally:
        page.close()
