"""fit(): reproducible, reports progress, stops cleanly on NaN with the last good model kept."""

from __future__ import annotations

import copy
import itertools
import math
import os

import pytest
import torch

from vae_core import cache, train
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
    fit(
        mcfg,
        tcfg.replace(epochs=2),
        tiny_data,
        device="cpu",
        final_iw_samples=0,
        progress=events.append,
        step_every=0.0,
    )
    assert [e.phase for e in events] == ["data"] * 2 + ["train"] * (2 * 4) + ["evaluate"] * 2
    assert [(e.done, e.total) for e in events if e.phase != "train"] == [(0, 1), (1, 1), (0, 1), (1, 1)]
    train_events = [e for e in events if e.phase == "train"]
    # 96 examples / batch 32 = 3 steps per epoch, then the epoch's end (its history entry added)
    assert [(e.epoch, e.done, len(e.history)) for e in train_events] == [
        (1, 1, 0),
        (1, 2, 0),
        (1, 3, 0),
        (1, 3, 1),
        (2, 4, 1),
        (2, 5, 1),
        (2, 6, 1),
        (2, 6, 2),
    ]
    assert all(e.total == 6 and e.epochs == 2 and math.isfinite(e.loss) for e in train_events)
    assert [e.fraction for e in train_events if len(e.history) == e.epoch] == [0.5, 1.0]
    assert all(b.seconds >= a.seconds for a, b in itertools.pairwise(train_events))
    assert "epoch 2 of 2 done · test ELBO " in train_events[-1].message
    assert train_events[-1].history[-1]["epoch"] == 2
    assert events[-1].message == f"evaluated the test ELBO of {len(tiny_data.x_test)} examples"

    class Stop(Exception):
        pass

    def cancel(ev):
        if ev.phase == "train" and len(ev.history) == 1:
            raise Stop

    with pytest.raises(Stop):
        fit(mcfg, tcfg.replace(epochs=5), tiny_data, device="cpu", progress=cancel)


def test_max_train_limits_the_examples_per_epoch(tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    events = []
    fit(
        mcfg,
        tcfg.replace(max_train=40),
        tiny_data,
        device="cpu",
        final_iw_samples=0,
        progress=events.append,
        step_every=0.0,
    )
    assert [e.total for e in events if e.phase == "train"] == [2, 2, 2]  # ceil(40 / 32) steps, then the end
    assert events[0].message == "moving 40 training examples to the cpu device"


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
    with pytest.raises(
        TrainingDivergedError,
        match=r"test ELBO is nan .* after epoch 2; stopped, model "
        r"restored to the end of epoch 1",
    ) as e:
        fit(mcfg, tcfg.replace(epochs=3), tiny_data, device="cpu")
    assert [h["epoch"] for h in e.value.history] == [1]
    assert all(math.isfinite(h["test_elbo"]) for h in e.value.history)


def test_divergence_in_the_first_epoch_restores_the_initial_weights(tiny_data):
    # a real blow-up, no patching: learned sigma with an absurd learning rate overflows at once
    mcfg = ModelConfig(input_shape=(64,), latent_dim=2, hidden=(16,), likelihood="gaussian-learned")
    tcfg = TrainConfig(dataset="tiny", epochs=3, batch_size=32, lr=1e6, seed=3)
    with pytest.raises(TrainingDivergedError, match=r"restored to the end of epoch 0 \(initial weights\)") as e:
        fit(mcfg, tcfg, tiny_data, device="cpu")
    torch.manual_seed(3)  # fit's generator seeded 3 draws what torch.manual_seed(3) + VAE(mcfg) draws
    assert _same_weights(e.value.model.state_dict(), VAE(mcfg).state_dict())
    assert e.value.history == []


def test_train_or_load_keeps_the_diverged_model_aside_and_caches_nothing(monkeypatch, tmp_path, tiny_data, tiny_cfgs):
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
    ck2, cached = cache.train_or_load(mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu", final_iw_samples=5)
    assert not cached and ck2.path == key_path and len(ck2.history) == 3


# --- no process-wide random state -------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(input_shape=(64,), latent_dim=2, hidden=(16, 8)),
        ModelConfig(input_shape=(1, 28, 28), latent_dim=3, arch="conv", hidden=(12,), conv_channels=(4, 6)),
        ModelConfig(input_shape=(64,), latent_dim=2, hidden=(), likelihood="gaussian-learned", sigma_mode="per-pixel"),
    ],
    ids=["mlp", "conv", "linear-learned-sigma"],
)
def test_init_weights_from_a_generator_equals_torch_default_init_after_manual_seed(cfg):
    # the reference is torch's own reset_parameters on the global generator: checkpoints trained
    # before fit() took a generator are reproduced bit for bit
    torch.manual_seed(7)
    ref = VAE(cfg).state_dict()
    torch.manual_seed(99)  # whatever the global generator holds
    mine = train.init_weights(VAE(cfg), torch.Generator().manual_seed(7)).state_dict()
    assert _same_weights(ref, mine)
    assert not _same_weights(ref, train.init_weights(VAE(cfg), torch.Generator().manual_seed(8)).state_dict())


def test_init_weights_refuses_a_layer_it_cannot_draw():
    with pytest.raises(TypeError, match="does not know how to initialise Embedding"):
        train.init_weights(torch.nn.Sequential(torch.nn.Embedding(3, 2)), torch.Generator())


def test_fit_neither_seeds_nor_reads_the_global_generator(monkeypatch, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    tcfg = tcfg.replace(binarize="dynamic")
    alone = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=5)
    torch.manual_seed(123)

    class VAEAfterAnotherDraw(VAE):  # another thread draws from the global generator meanwhile
        def __init__(self, cfg):
            torch.rand(100)
            super().__init__(cfg)

    monkeypatch.setattr(train, "VAE", VAEAfterAnotherDraw)
    disturbed = fit(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=5)
    assert torch.initial_seed() == 123  # fit did not re-seed it (torch.manual_seed(tcfg.seed) would)
    assert _same_weights(alone.model.state_dict(), disturbed.model.state_dict())
    assert _strip(alone.history) == _strip(disturbed.history) and alone.metrics == disturbed.metrics


def test_two_fits_at_once_in_two_threads_give_what_each_gives_alone(tiny_data, tiny_cfgs):
    import threading

    mcfg, tcfg = tiny_cfgs
    configs = [tcfg.replace(epochs=2, seed=s, binarize="dynamic") for s in (0, 1)]
    alone = [fit(mcfg, c, tiny_data, device="cpu", final_iw_samples=5) for c in configs]
    # lockstep: each fit waits for the other at every progress report, so their steps interleave
    barrier = threading.Barrier(2, timeout=300)  # a hang guard only
    results, errors = [None, None], []

    def run(i):
        try:
            results[i] = fit(
                mcfg,
                configs[i],
                tiny_data,
                device="cpu",
                final_iw_samples=5,
                step_every=0.0,
                progress=lambda ev: barrier.wait(),
            )
        except Exception as e:  # noqa: BLE001  (reported below, with the other thread released)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors and all(r is not None for r in results)
    for a, b in zip(alone, results):
        assert _same_weights(a.model.state_dict(), b.model.state_dict())
        assert _strip(a.history) == _strip(b.history) and a.metrics == b.metrics
    assert not _same_weights(results[0].model.state_dict(), results[1].model.state_dict())
