"""A served class may have no internet, and a browser user's requests must not leave for third
parties: every request the app's pages make goes to the server itself (here 127.0.0.1). A Material icon
as the tab icon once had Chromium fetch an SVG from Google's font CDN on every page."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest

from tests.harness.browser import StreamlitServer, new_page, wait_idle
from vae_core.cache import default_checkpoint_path

pytestmark = pytest.mark.browser

PAGES = ("", "replay", "traversal", "lab-elbo", "model-card")


def test_every_request_stays_on_the_server(browser):
    if not os.path.exists(default_checkpoint_path()):
        pytest.skip("the shipped default checkpoint is not present")
    with StreamlitServer("app/main.py", timeout=300) as server:
        page = new_page(browser, 1280, 900)
        elsewhere = []
        page.on(
            "request",
            lambda r: (
                elsewhere.append(r.url)
                if urlparse(r.url).hostname not in ("127.0.0.1",) and not r.url.startswith(("data:", "blob:"))
                else None
            ),
        )
        try:
            for slug in PAGES:
                page.goto(f"{server.url}/{slug}")
                page.locator("[data-testid=stSidebarNav]").wait_for()
                wait_idle(page)
            icon = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href)")
            assert icon and all(urlparse(h).hostname == "127.0.0.1" for h in icon), icon
            assert elsewhere == []
        finally:
            page.close()
