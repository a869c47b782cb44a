"""The sidebar picker (app.common): a model whose z carries almost no information gets a warning."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache_mod
from app.common import LOW_KL_NATS_PER_DIM, little_information
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.constants import KL_COLLAPSED_NATS
from vae_core.model import VAE

SCRIPT = "from app.common import pick_checkpoint_path\npick_checkpoint_path()\n"


def _save(folder, name: str, kl_per_dim: list[float]) -> str:
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=len(kl_per_dim), hidden=(4,)))
    return save_checkpoint(
        str(folder / f"{name}.safetensors"),
        model,
        TrainConfig(dataset="digits", epochs=1),
        metrics={"elbo": -50.0, "kl": sum(kl_per_dim), "kl_per_dim": kl_per_dim},
    )


@pytest.mark.parametrize(
    "kl, warned",
    [
        ([0.04] * 16, True),  # the 1-epoch model: 0.04 nats per dim
        ([1.5] * 16, False),  # the shipped model: about 1.5 nats per dim
        ([2.0] * 3 + [0.001] * 13, True),  # most dims collapsed, though the mean is 0.38
        ([2.0] * 8 + [0.001] * 8, False),  # half collapsed: a beta-VAE's usual state, no warning
        ([LOW_KL_NATS_PER_DIM] * 4, False),  # the threshold itself passes
    ],
)
def test_little_information_flags_barely_trained_or_mostly_collapsed_models(kl, warned):
    msg = little_information({"metrics": {"kl_per_dim": kl}})
    assert (msg is not None) == warned
    if warned:
        n = sum(v < KL_COLLAPSED_NATS for v in kl)
        assert f"average KL {sum(kl) / len(kl):.2f} nats per latent dim, {n} of {len(kl)} dims collapsed" in msg


def test_little_information_reads_the_last_epoch_when_the_file_has_no_test_metrics():
    meta = {"metrics": {}, "history": [{"test_kl_per_dim": [1.0, 1.0]}, {"test_kl_per_dim": [0.02, 0.03]}]}
    assert "average KL 0.03" in little_information(meta)
    assert little_information({"metrics": {}, "history": []}) is None


def test_the_sidebar_warns_about_a_barely_trained_model(tmp_path, monkeypatch):
    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, str(tmp_path))
    weak, good = _save(tmp_path, "weak", [0.04] * 4), _save(tmp_path, "good", [1.5] * 4)
    at = AppTest.from_string(SCRIPT, default_timeout=600)
    at.session_state["sidebar_model_path"] = weak
    at.run()
    assert not at.exception
    assert [w.value for w in at.sidebar.warning if "Little information in z" in w.value]
    at.selectbox(key="sidebar_model_select").set_value(good).run()
    assert not [w.value for w in at.sidebar.warning if "Little information in z" in w.value]
