"""latent_decoder's Python side without a browser: what each rerun sends ({z, rev} of the ZSync, the
slider range and step, the debug flag), and how a browser report reaches the ZSync; server mode: the
pixels sent are PyTorch's decode of z. The protocol itself: tests/test_z_sync.py."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.components.latent_decoder import image_data
from vae_core.config import ModelConfig
from vae_core.constants import SLIDER_RANGE, SLIDER_STEP
from vae_core.model import VAE

_SCRIPT = """
import streamlit as st
import torch

from app.components.latent_decoder import latent_decoder
from app.components.z_sync import ZSync
from vae_core.browser import decoder_payload
from vae_core.config import ModelConfig
from vae_core.model import VAE

torch.manual_seed(0)
w = decoder_payload(VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden=(3,))))
sync = st.session_state.setdefault("z", ZSync([0.5] * {z_len}))
if "new_z" in st.session_state:  # a set from Python (map click, button)
    sync.set(st.session_state.pop("new_z"))
latent_decoder(w, sync, [f"z{{i}}" for i in range({n_labels})], [False] * {n_labels}, key="dec")
"""


def _app(z_len: int = 2, n_labels: int = 2) -> AppTest:
    return AppTest.from_string(_SCRIPT.format(z_len=z_len, n_labels=n_labels), default_timeout=300)


def sent(at) -> dict:
    return json.loads(at.get("bidi_component")[0].proto.json)


def test_weights_go_once_then_only_their_id(monkeypatch):
    monkeypatch.delenv("VAE_DEBUG_HOOKS", raising=False)
    at = _app().run()
    assert not at.exception
    first = sent(at)
    assert first["weights"]["id"] == first["weights_id"] and len(first["weights"]["layers"]) == 2
    assert first["range"] == [-SLIDER_RANGE, SLIDER_RANGE] and first["step"] == SLIDER_STEP
    assert first["debug"] is False  # no measurement hooks unless VAE_DEBUG_HOOKS=1
    at.run()
    second = sent(at)
    assert second["weights"] is None and second["weights_id"] == first["weights_id"]
    assert second["z"] == [0.5, 0.5] and second["rev"] == first["rev"]  # nothing new: the sliders stay
    at.session_state["new_z"] = [1.0, -1.0]  # a set from Python moves the sliders: a new rev
    at.run()
    assert sent(at)["z"] == [1.0, -1.0] and sent(at)["rev"] == first["rev"] + 1 and sent(at)["weights"] is None


def test_debug_hooks_follow_the_environment(monkeypatch):
    monkeypatch.setenv("VAE_DEBUG_HOOKS", "1")
    at = _app().run()
    assert not at.exception and sent(at)["debug"] is True


def _reported(msg, state: str):
    """The `z` trigger's callback, as Streamlit runs it before the script: {z, rev} into the ZSync."""
    import streamlit as st

    from app.components.latent_decoder import _on_report
    from app.components.z_sync import ZSync

    sync = ZSync([0.0, 0.0])  # rev 1
    st.session_state[state] = {"z": msg}
    _on_report(state, sync)
    st.session_state["out"] = (sync.z, sync.rev)


@pytest.mark.parametrize(
    "msg, want",
    [
        ({"z": [1.0, -2.0], "rev": 1}, ([1.0, -2.0], 1)),
        ({"z": [1.0, -2.0], "rev": 0}, ([0.0, 0.0], 1)),  # stale
        ([1.0, -2.0], ([0.0, 0.0], 1)),
    ],
)  # old format
def test_the_trigger_reports_into_the_zsync(msg, want):
    at = AppTest.from_function(_reported, args=(msg, "dec_state"), default_timeout=300).run()
    assert not at.exception
    assert at.session_state["out"] == want


@pytest.mark.parametrize(
    "z_len, n_labels, match",
    [(3, 2, "z has 3 values, the decoder takes latent_dim=2"), (2, 1, "need one entry per latent dim")],
)
def test_bad_arguments_fail_with_a_clear_message(z_len, n_labels, match):
    from streamlit import config

    # the served config hides error details from browsers (client.showErrorDetails = "none");
    # this test reads the developer's message, so it shows them for its own run
    old = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")
    try:
        at = _app(z_len, n_labels).run()
    finally:
        config.set_option("client.showErrorDetails", old)
    assert at.exception and match in at.exception[0].message


# Server mode: a conv VAE decodes on the server; the component gets the pixels as data.
_SERVER_SCRIPT = """
import streamlit as st
import torch

from app.components.latent_decoder import server_decoder
from app.components.z_sync import ZSync
from vae_core.config import ModelConfig
from vae_core.images import to_display
from vae_core.model import VAE

torch.manual_seed(0)
model = VAE(ModelConfig(input_shape={shape}, latent_dim=3, arch="conv", hidden=(8,), conv_channels=(4, 8)))
with torch.no_grad():
    for p in model.decoder.parameters():
        p.mul_(4.0)  # wider logits: contrast in the image
sync = st.session_state.setdefault("z", ZSync([0.5, -1.0, 2.0]))
if "new_z" in st.session_state:
    sync.set(st.session_state.pop("new_z"))
with torch.no_grad():
    img = to_display(model.decode_mean(torch.tensor([sync.z]))[0], model.cfg.input_shape)
server_decoder(img, sync, ["a", "b", "c"], [False, True, False], key="dec", preview_ms={preview_ms})
"""


def _server_app(shape=(1, 28, 28), preview_ms=100) -> AppTest:
    return AppTest.from_string(_SERVER_SCRIPT.format(shape=shape, preview_ms=preview_ms), default_timeout=300)


def shown_pixels(data: dict) -> np.ndarray:
    """The image the component was sent, (H, W, C) uint8."""
    img = data["image"]
    raw = np.frombuffer(base64.b64decode(img["pixels"]), np.uint8)
    return raw.reshape(img["height"], img["width"], img["channels"])


def pytorch_pixels(shape, z) -> np.ndarray:
    """E[x|z] of the script's seeded model, decoded here in float64, as (H, W, C) in 0..255."""
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=shape, latent_dim=3, arch="conv", hidden=(8,), conv_channels=(4, 8)))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(4.0)
        mean = model.double().decode_mean(torch.tensor([z], dtype=torch.float64))[0].clamp(0, 1).numpy()
    return mean.transpose(1, 2, 0) * 255  # (C, H, W) -> (H, W, C)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_server_mode_sends_the_pytorch_decode_of_z(shape):
    at = _server_app(shape).run()
    assert not at.exception
    first = sent(at)
    assert "weights_id" not in first and first["preview_ms"] == 100
    assert first["labels"] == ["a", "b", "c"] and first["inactive"] == [False, True, False]
    got, want = shown_pixels(first), pytorch_pixels(shape, [0.5, -1.0, 2.0])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=0.51)  # 8-bit rounding only
    assert want.std() > 20, "the test model decodes to a flat image; the comparison would prove little"
    at.session_state["new_z"] = [-2.0, 0.0, 1.0]
    at.run()
    second = sent(at)
    assert second["z"] == [-2.0, 0.0, 1.0] and second["rev"] == first["rev"] + 1
    np.testing.assert_allclose(shown_pixels(second), pytorch_pixels(shape, [-2.0, 0.0, 1.0]), atol=0.51)
    assert not np.array_equal(shown_pixels(second), got)


def test_server_mode_without_drag_previews():
    at = _server_app(preview_ms=None).run()
    assert not at.exception and sent(at)["preview_ms"] is None


@pytest.mark.parametrize("img, match", [(np.zeros((2, 3, 4)), "image must be"), (np.zeros(5), "image must be")])
def test_image_data_rejects_other_shapes(img, match):
    with pytest.raises(ValueError, match=match):
        image_data(img)


def test_image_data_rounds_and_clips():
    got = image_data(np.array([[0.0, 0.5, 1.0, 1.5, -0.2, 0.999]]))
    assert (got["height"], got["width"], got["channels"]) == (1, 6, 1)
    assert list(base64.b64decode(got["pixels"])) == [0, 128, 255, 255, 0, 255]
