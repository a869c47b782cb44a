"""fit's GPU options on the CPU: bf16 autocast (--amp), torch.compile (--compile), and checkpoints
from a wrapped or autocast model that load on a CPU-only machine. No CUDA here: the CUDA runs of
these options are the bench's (bench/train_throughput.py --device cuda)."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from vae_core.checkpoints import load_checkpoint, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.train import check_options, fit


@pytest.fixture
def digits_cfgs():
    from vae_core.data import load_dataset

    data = load_dataset("digits")
    return (
        data,
        ModelConfig(input_shape=data.input_shape, latent_dim=4, hidden=(64,)),
        TrainConfig(dataset="digits", epochs=3, batch_size=64, seed=0, binarize="dynamic"),
    )


def test_amp_trains_in_bf16_and_keeps_float32_weights(tmp_path, digits_cfgs):
    data, mcfg, tcfg = digits_cfgs
    ref = fit(mcfg, tcfg, data, device="cpu", final_iw_samples=0)
    amp = fit(mcfg, tcfg, data, device="cpu", final_iw_samples=0, amp=True)
    assert amp.metrics["runtime"]["amp"] is True and ref.metrics["runtime"]["amp"] is False
    assert all(math.isfinite(e["train_loss"]) for e in amp.history)
    assert amp.history[-1]["test_elbo"] > amp.history[0]["test_elbo"]  # it learns
    assert amp.history[-1]["test_elbo"] == pytest.approx(ref.history[-1]["test_elbo"], abs=1.0)
    assert amp.history[-1]["train_loss"] != ref.history[-1]["train_loss"]  # bf16 really ran
    assert all(t.dtype == torch.float32 for t in amp.model.state_dict().values())
    path = save_checkpoint(str(tmp_path / "amp.safetensors"), amp.model, tcfg, metrics=amp.metrics)
    ck = load_checkpoint(path, map_location="cpu")
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in ck.model.state_dict().values())


def test_options_are_refused_where_they_cannot_run(monkeypatch):
    with pytest.raises(ValueError, match="--amp \\(bf16 autocast\\) runs on cuda or cpu, not mps"):
        check_options(torch.device("mps"), amp=True, compile=False)
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(ValueError, match="--compile on the CPU needs a C\\+\\+ compiler"):
        check_options(torch.device("cpu"), amp=False, compile=True)
    check_options(torch.device("cpu"), amp=True, compile=False)  # fine


def test_cli_passes_the_options_to_fit():
    from vae_core.cli import build_parser

    a = build_parser().parse_args(["train", "--amp", "--compile", "--data-mode", "stream", "--dist-timeout", "30"])
    assert (a.amp, a.compile, a.data_mode, a.dist_timeout) == (True, True, "stream", 30.0)
    d = build_parser().parse_args(["train"])
    assert (d.amp, d.compile, d.data_mode) == (False, False, "auto")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_compiled_training_matches_eager_and_saves_plain_weights(tmp_path, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    tcfg = tcfg.replace(epochs=2, batch_size=40)  # 96 rows: steps of 40, 40, 16 (a recompile for 16)
    eager = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=0)
    comp = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=0, compile=True)
    assert comp.metrics["runtime"]["compile"] is True
    assert comp.history[-1]["test_elbo"] == pytest.approx(eager.history[-1]["test_elbo"], abs=1e-3)
    # the compiled wrapper's "_orig_mod." never reaches the weights: a strict load on the CPU works
    state = comp.model.state_dict()
    assert state.keys() == eager.model.state_dict().keys()
    path = save_checkpoint(str(tmp_path / "c.safetensors"), comp.model, tcfg)
    ck = load_checkpoint(path, map_location="cpu")
    assert all(torch.equal(ck.model.state_dict()[k], state[k]) for k in state)
