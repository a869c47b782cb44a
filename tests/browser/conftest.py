"""Fixtures for the browser tests: Chromium, `streamlit run` servers, tiny seeded checkpoints."""

from __future__ import annotations

import os

import pytest
import torch

from tests.harness.browser import CHROMIUM, StreamlitServer, chromium
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import VAE


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian chromium to run the browser tests")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    from tests.harness.browser import new_page

    p = new_page(browser)
    yield p
    p.close()


@pytest.fixture(scope="session")
def component_server(browser):
    """The latent_decoder component alone (tests/browser/component_app.py)."""
    with StreamlitServer("tests/browser/component_app.py") as server:
        yield server


def seeded_checkpoints(folder, specs, **model_kw) -> dict:
    """Untrained seeded VAEs (random decoders still give varied images), saved in `folder`.
    specs: [(name, input_shape, likelihood)]; model_kw: more ModelConfig fields (arch, conv_channels)."""
    out = {}
    for name, shape, like in specs:
        torch.manual_seed(3)
        model = VAE(ModelConfig(input_shape=shape, latent_dim=4, hidden=(16,), likelihood=like, **model_kw))
        with torch.no_grad():
            for p in model.decoder.parameters():
                p.mul_(4.0)  # wider logits: visible contrast in the decoded image
        out[name] = save_checkpoint(str(folder / f"{name}.safetensors"), model, TrainConfig(dataset="digits", epochs=1))
    return out


@pytest.fixture(scope="session")
def make_seeded_checkpoints():
    """seeded_checkpoints for test modules (a conftest is not imported by name)."""
    return seeded_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """MLP VAEs, grey and RGB."""
    return seeded_checkpoints(
        tmp_path_factory.mktemp("ckpts"),
        [("grey", (1, 10, 12), "bernoulli"), ("rgb", (3, 9, 9), "continuous-bernoulli")],
    )
