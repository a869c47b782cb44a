"""The app as a class gets it: `streamlit run app/main.py` over a checkpoint cache that holds one bad
file of every kind (issue 9), every page opened in Chromium. No page may show a traceback; the picker
lists the good models and marks each bad file; opening a bad one gives one error; file names that
look like Markdown stay text. A second server with VAE_ALLOW_TRAINING=0 has no Train page.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from app.lab import PAGES as LAB_PAGES
from app.views import PAGES
from tests.harness.browser import StreamlitServer, new_page, save_screenshot, wait_idle
from vae_core.cache import default_checkpoint_path
from vae_core.projection_cache import cache_path_for

pytestmark = pytest.mark.browser

MD_NAME = "md[click me](javascript:alert(1))"
HEADER_OK = {"nan_weights.safetensors", "model_config_empty.safetensors"}  # fail when opened, not listed


@pytest.fixture(scope="module")
def bad_cache(tmp_path_factory, bad_checkpoints, copy_checkpoint):
    """The shipped model (with its map cache), the lab's models, and one bad file of every kind."""
    shipped = default_checkpoint_path()
    if not os.path.exists(shipped):
        pytest.skip("the shipped default checkpoint is not present")
    folder = tmp_path_factory.mktemp("served_ckpts")
    good = shutil.copy(shipped, folder)
    if os.path.exists(cache_path_for(shipped)):
        shutil.copy(cache_path_for(shipped), folder)
    os.symlink(os.path.join(os.path.dirname(shipped), "lab"), folder / "lab")
    names = bad_checkpoints(str(folder), good)
    copy_checkpoint(
        good,
        str(folder / "foreign_data.safetensors"),  # trained on a folder no user was given
        {"train_config": json.dumps({"dataset": "/etc", "epochs": 1})},
    )
    shutil.copy(good, folder / f"{MD_NAME}.safetensors")
    (folder / ".proj.npz").write_bytes(b"PK\x03\x04 not a zip")  # a stray bad cache file too
    return folder, names


@pytest.fixture(scope="module")
def server(browser, bad_cache):
    env = {"VAE_CHECKPOINT_DIR": str(bad_cache[0])}
    env.pop("VAE_DATA_ROOTS", None)
    with StreamlitServer("app/main.py", env=env, timeout=300) as s:
        yield s


def no_traceback(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0
    assert "Traceback" not in page.locator("body").inner_text()


ALL_PAGES = [(slug, title) for slug, title, _icon, _mod in PAGES + LAB_PAGES]


@pytest.mark.parametrize("slug,title", ALL_PAGES, ids=[s for s, _ in ALL_PAGES])
def test_every_page_renders_with_bad_files_in_the_cache(browser, server, slug, title):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + ("/" if slug == "explorer" else f"/{slug}"))
        page.get_by_role("heading").first.wait_for(timeout=180_000)
        wait_idle(page)
        no_traceback(page)
        errors = page.locator("[data-testid=stAlertContentError]")
        assert errors.count() == 0, errors.all_inner_texts()
        assert page.locator("a", has_text="click me").count() == 0
        save_screenshot(page, f"served_{slug}.png")
    finally:
        page.close()


def test_the_picker_marks_every_bad_file_and_opening_one_shows_one_error(browser, server, bad_cache):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + "/elbo")
        wait_idle(page)
        page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
        options = page.get_by_role("option").all_inner_texts()
        bad = [o for o in options if o.startswith("⚠")]
        expected = [n for n in bad_cache[1] if n not in HEADER_OK]
        assert len(bad) == len(expected), options
        for name in expected:
            assert any(name in o for o in bad), name
        assert any(o.startswith(MD_NAME) for o in options)  # listed, as text
        page.get_by_role("option").filter(has_text="nan_weights").first.click()
        wait_idle(page)
        no_traceback(page)
        err = page.locator("[data-testid=stAlertContentError]")
        assert err.count() == 1 and "NaN" in err.inner_text()
        page.get_by_role("link", name="Latent explorer").click()  # other pages still work
        wait_idle(page)
        no_traceback(page)
    finally:
        page.close()


def test_a_checkpoint_naming_a_server_folder_is_refused(browser, server):
    page = new_page(browser, 1280, 900)
    try:
        page.goto(server.url + "/elbo")
        wait_idle(page)
        page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
        page.get_by_role("option").filter(has_text="foreign_data").first.click()
        wait_idle(page)
        no_traceback(page)
        err = page.locator("[data-testid=stAlertContentError]")
        assert err.count() == 1 and "outside" in err.inner_text()
    finally:
        page.close()


def test_training_switched_off_hides_the_train_page(browser, bad_cache):
    with StreamlitServer(
        "app/main.py", env={"VAE_CHECKPOINT_DIR": str(bad_cache[0]), "VAE_ALLOW_TRAINING": "0"}, timeout=300
    ) as s:
        page = new_page(browser, 1280, 900)
        try:
            page.goto(s.url + "/elbo")
            wait_idle(page)
            nav = page.locator("[data-testid=stSidebarNav]").inner_text()
            assert "ELBO breakdown" in nav and "Train a model" not in nav
        finally:
            page.close()
