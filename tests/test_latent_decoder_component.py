"""latent_decoder's Python side without a browser: what each rerun sends, and when sliders may move."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app.components.latent_decoder import _z_revision


_SCRIPT = """
import streamlit as st
import torch

from app.components.latent_decoder import latent_decoder
from vae_core.browser import decoder_payload
from vae_core.config import ModelConfig
from vae_core.model import VAE

torch.manual_seed(0)
w = decoder_payload(VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden=(3,))))
z = st.session_state.setdefault("z", [0.5] * {z_len})
latent_decoder(w, z, [f"z{{i}}" for i in range({n_labels})], [False] * {n_labels}, key="dec")
"""


def _app(z_len: int = 2, n_labels: int = 2) -> AppTest:
    return AppTest.from_string(_SCRIPT.format(z_len=z_len, n_labels=n_labels), default_timeout=60)


def sent(at) -> dict:
    return json.loads(at.get("bidi_component")[0].proto.json)


def test_weights_go_once_then_only_their_id():
    at = _app().run()
    assert not at.exception
    first = sent(at)
    assert first["weights"]["id"] == first["weights_id"] and len(first["weights"]["layers"]) == 2
    at.run()
    second = sent(at)
    assert second["weights"] is None and second["weights_id"] == first["weights_id"]
    assert second["z"] == [0.5, 0.5] and second["z_rev"] == first["z_rev"]
    at.session_state["z"] = [1.0, -1.0]  # a new z from Python (map click, button) moves the sliders
    at.run()
    assert sent(at)["z_rev"] == first["z_rev"] + 1 and sent(at)["weights"] is None


@pytest.mark.parametrize("z_len, n_labels, match", [(3, 2, "z has 3 values, the decoder takes latent_dim=2"),
                                                    (2, 1, "need one entry per latent dim")])
def test_bad_arguments_fail_with_a_clear_message(z_len, n_labels, match):
    at = _app(z_len, n_labels).run()
    assert at.exception and match in at.exception[0].message


def test_z_revision_moves_sliders_only_for_new_values_from_python():
    sync = {"z": None, "rev": 0, "released": []}
    assert _z_revision(sync, [0.0, 0.0]) == 1          # first z
    assert _z_revision(sync, [0.0, 0.0]) == 1          # unchanged
    sync["released"].append([1.0, 0.0])                 # the user released slider 0 ...
    sync["released"].append([1.0, 2.0])                 # ... then slider 1 before the page caught up
    assert _z_revision(sync, [1.0, 0.0]) == 1          # late echo of the first release: keep sliders
    assert sync["released"] == [[1.0, 2.0]]
    assert _z_revision(sync, [1.0, 2.0]) == 1          # echo of the second
    assert _z_revision(sync, [0.0, 0.0]) == 2          # "z = 0" button: a new value
    sync["released"].append([0.5, 0.0])
    assert _z_revision(sync, [-1.0, -1.0]) == 3        # map click while a release was in flight
    assert sync["released"] == []
