"""eval_mode / evaluate: evaluation runs in eval mode and leaves the model's mode as it found it."""

from __future__ import annotations

import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.estimators import evaluate
from vae_core.model import VAE
from vae_core.modes import eval_mode


def _model() -> VAE:
    torch.manual_seed(0)
    return VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden=(8,)))


def _modes(m: torch.nn.Module) -> set[bool]:
    return {mod.training for mod in m.modules()}


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_runs_in_eval_mode_and_restores_the_mode(training):
    model = _model().train(training)
    seen = []
    model.encoder.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    evaluate(model, x, iw_samples=3)
    assert seen and not any(seen)  # every forward pass of the evaluation saw eval mode
    assert _modes(model) == {training}


def test_eval_mode_writes_nothing_to_a_model_already_in_eval_mode():
    model = _model().eval()

    def refuse(mode=True):
        raise AssertionError("train()/eval() called on a shared eval-mode model")

    model.train = refuse  # eval() calls train(False)
    with eval_mode(model) as m:
        assert m is model and _modes(model) == {False}
    assert _modes(model) == {False}


def test_eval_mode_restores_train_mode_when_the_block_raises():
    model = _model().train()
    with pytest.raises(KeyError), eval_mode(model):
        assert _modes(model) == {False}
        raise KeyError("boom")
    assert _modes(model) == {True}
