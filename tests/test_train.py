"""fit(): reproducible, reports progress, stops cleanly on NaN with the last good model kept."""
from __future__ import annotations

import copy
import math
import os

import pytest
import torch

import vae_core.cache as cache
import vae_core.train as train
from vae_core.checkpoints import load_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import VAE
from vae_core.train import TrainingDivergedError, fit

TIMING = {"seconds", "images_per_s"}


def _strip(history):
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_history_and_weights(tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    tcfg = tcfg.replace(epochs=2, binarize="dynamic")  # dynamic binarization draws from the seeded generator too
    r1 = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=5)
    r2 = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=5)
    assert _strip(r1.history) == _strip(r2.history) and r1.metrics == r2.metrics
    assert _same_weights(r1.model.state_dict(), r2.model.state_dict())
    r3 = fit(mcfg, tcfg.replace(seed=1), tiny_data, device="cpu", final_iw_samples=5)
    assert _strip(r3.history) != _strip(r1.history)


def test_history_and_metrics_are_consistent(tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    r = fit(mcfg, tcfg.replace(epochs=4, lr=1e-2, warmup_epochs=2), tiny_data, device="cpu", final_iw_samples=50)
    h = r.history
    assert [e["epoch"] for e in h] == [1, 2, 3, 4]
    assert [e["beta"] for e in h] == [0.5, 1.0, 1.0, 1.0]  # beta at the end of each epoch
    for e in h:
        assert e["train_elbo"] == pytest.approx(e["train_recon"] - e["train_kl"])
        assert e["test_elbo"] == pytest.approx(e["test_recon"] - e["test_kl"])
        assert sum(e["test_kl_per_dim"]) == pytest.approx(e["test_kl"], rel=1e-5)
    # with beta = 1 and no free bits the loss is exactly -ELBO
    assert h[-1]["train_loss"] == pytest.approx(-h[-1]["train_elbo"], rel=1e-5)
    assert h[-1]["test_elbo"] > h[0]["test_elbo"]  # it learns something
    m = r.metrics
    assert m["iw_samples"] == 50 and m["n"] == len(tiny_data.x_test)
    assert m["log_likelihood"] >= m["elbo"] - 0.5  # the K=50 bound sits above the ELBO up to MC noise
    assert not r.model.training and next(r.model.parameters()).device.type == "cpu"


def test_progress_events_and_cancel(tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    events = []
    fit(mcfg, tcfg.replace(epochs=2), tiny_data, device="cpu", final_iw_samples=0,
        progress=events.append, step_every=0.0)
    steps = [e for e in events if e.kind == "step"]
    ends = [e for e in events if e.kind == "epoch"]
    assert len(steps) == 2 * 3 and len(ends) == 2  # 96 examples / batch 32 = 3 steps per epoch
    assert [e.fraction for e in ends] == [0.5, 1.0]
    assert all(b.fraction >= a.fraction for a, b in zip(events, events[1:]))
    assert all(e.steps_per_epoch == 3 and math.isfinite(e.loss) for e in events)
    assert len(ends[-1].history) == 2

    class Stop(Exception):
        pass

    def cancel(ev):
        if ev.kind == "epoch":
            raise Stop

    with pytest.raises(Stop):
        fit(mcfg, tcfg.replace(epochs=5), tiny_data, device="cpu", progress=cancel)


def test_max_train_limits_the_examples_per_epoch(tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    events = []
    fit(mcfg, tcfg.replace(max_train=40), tiny_data, device="cpu", final_iw_samples=0,
        progress=events.append, step_every=0.0)
    assert events[-1].steps_per_epoch == 2  # ceil(40 / 32)


def test_shape_mismatch_is_a_clear_error(tiny_data):
    with pytest.raises(ValueError, match=r"model input_shape \(1, 8, 8\) does not match dataset 'tiny'"):
        fit(ModelConfig(input_shape=(1, 8, 8), latent_dim=2), TrainConfig(epochs=1), tiny_data, device="cpu")


# --- divergence -----------------------------------------------------------------------------

def _nan_at(monkeypatch, call: int, snapshots: dict):
    """Make the loss NaN at the `call`-th batch; snapshot the weights seen at every batch."""
    real, n = train.training_loss, [0]

    def patched(model, x, **kw):
        n[0] += 1
        snapshots[n[0]] = copy.deepcopy(model.state_dict())
        loss, t = real(model, x, **kw)
        return (loss * float("nan"), t) if n[0] == call else (loss, t)

    monkeypatch.setattr(train, "training_loss", patched)


def test_nan_mid_training_restores_the_last_good_epoch(monkeypatch, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    snaps = {}
    _nan_at(monkeypatch, 3 + 2, snaps)  # 3 steps per epoch: epoch 2, step 2
    with pytest.raises(TrainingDivergedError) as e:
        fit(mcfg, tcfg.replace(epochs=3), tiny_data, device="cpu")
    err = e.value
    msg = str(err)
    assert "loss is nan at epoch 2, step 2/3" in msg and "restored to the end of epoch 1" in msg
    assert "lower learning rate" in msg
    assert err.last_good_epoch == 1 and [h["epoch"] for h in err.history] == [1]
    # weights at the first batch of epoch 2 are the end of epoch 1; by the NaN batch they had moved
    assert _same_weights(err.model.state_dict(), snaps[4])
    assert not _same_weights(err.model.state_dict(), snaps[5])
    assert not err.model.training


def test_non_finite_test_elbo_is_divergence_not_a_good_epoch(monkeypatch, tiny_data, tiny_cfgs):
    # finite weights with a non-finite test ELBO (saturated logits) must not become "last good"
    mcfg, tcfg = tiny_cfgs
    real, calls = train.evaluate, [0]

    def patched(model, x, **kw):
        calls[0] += 1
        res = real(model, x, **kw)
        return {**res, "elbo": float("nan"), "kl": float("inf")} if calls[0] == 2 else res

    monkeypatch.setattr(train, "evaluate", patched)
    with pytest.raises(TrainingDivergedError, match=r"test ELBO is nan .* after epoch 2; stopped, model "
                                                    r"restored to the end of epoch 1") as e:
        fit(mcfg, tcfg.replace(epochs=3), tiny_data, device="cpu")
    assert [h["epoch"] for h in e.value.history] == [1]
    assert all(math.isfinite(h["test_elbo"]) for h in e.value.history)


def test_divergence_in_the_first_epoch_restores_the_initial_weights(tiny_data):
    # a real blow-up, no patching: learned sigma with an absurd learning rate overflows at once
    mcfg = ModelConfig(input_shape=(64,), latent_dim=2, hidden=(16,), likelihood="gaussian-learned")
    tcfg = TrainConfig(dataset="tiny", epochs=3, batch_size=32, lr=1e6, seed=3)
    with pytest.raises(TrainingDivergedError, match=r"restored to the end of epoch 0 \(initial weights\)") as e:
        fit(mcfg, tcfg, tiny_data, device="cpu")
    torch.manual_seed(3)  # fit seeds, then builds the model: the same initial weights
    assert _same_weights(e.value.model.state_dict(), VAE(mcfg).state_dict())
    assert e.value.history == []


def test_train_or_load_keeps_the_diverged_model_aside_and_caches_nothing(monkeypatch, tmp_path, tiny_data,
                                                                         tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    tcfg = tcfg.replace(epochs=3)
    snaps = {}
    _nan_at(monkeypatch, 3 + 2, snaps)
    with pytest.raises(TrainingDivergedError) as e:
        cache.train_or_load(mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu")
    key_path = cache.cache_path(mcfg, tcfg, tiny_data, str(tmp_path))
    bad = key_path.replace(".safetensors", ".diverged.safetensors")
    assert e.value.path == bad and f"Last good model kept at {bad}." in str(e.value)
    assert not os.path.exists(key_path)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(bad)]  # no lock, no temp, no cache entry
    ck = load_checkpoint(bad)
    assert _same_weights(ck.model.state_dict(), snaps[4])
    assert [h["epoch"] for h in ck.history] == [1] and "diverged" in ck.metrics
    # the cache never lists it under the key: the next call trains again
    monkeypatch.undo()  # the real loss again
    ck2, cached = cache.train_or_load(mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu",
                                      final_iw_samples=5)
    assert not cached and ck2.path == key_path and len(ck2.history) == 3
