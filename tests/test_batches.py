"""vae_core.batches: per-batch float conversion, global-batch noise sliced per rank, data modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core import batches as bt
from vae_core.config import ModelConfig, TrainConfig
from vae_core.dataset import unit_float
from vae_core.train import fit


def test_uint8_to_float_per_batch_is_bit_identical_to_the_old_float_storage():
    x = np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8)
    want = x.astype(np.float32) / 255.0  # how datasets used to be stored
    assert torch.equal(unit_float(torch.from_numpy(x)), torch.from_numpy(want))
    f = torch.rand(3, 5)
    assert torch.equal(unit_float(f), f)


def test_targets_fixed_and_dynamic():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.51, 1.0]])
    assert bt.targets(x, "fixed", None).tolist() == [[0, 0, 0, 1, 1]]
    assert torch.equal(bt.targets(x, "none", None), x)
    u = torch.tensor([[0.0, 0.1, 0.6, 0.5, 0.999]])
    assert bt.targets(x, "dynamic", u).tolist() == [[0, 1, 0, 1, 1]]  # 1 where u < x: Bernoulli(x)
    # the Bernoulli rate: mean of many draws -> x (Monte Carlo, fixed generator)
    g = torch.Generator().manual_seed(0)
    p = torch.full((200_000,), 0.3)
    assert bt.targets(p, "dynamic", torch.rand(p.shape, generator=g)).mean().item() == pytest.approx(0.3, abs=0.005)


def test_rank_slices_of_the_step_noise_are_the_global_draw():
    m, shape = 7, (1, 2, 2)
    one = bt.StepNoise(3, torch.device("cpu"))
    whole_u = one.uniform(m, shape, slice(0, m))
    whole_e = one.normal(2, m, 4, slice(0, m))
    for world in (2, 3):
        ranks = [bt.StepNoise(3, torch.device("cpu")) for _ in range(world)]
        us = [r.uniform(m, shape, bt.shard(m, i, world)) for i, r in enumerate(ranks)]
        es = [r.normal(2, m, 4, bt.shard(m, i, world)) for i, r in enumerate(ranks)]
        assert torch.equal(torch.cat(us), whole_u) and torch.equal(torch.cat(es, 1), whole_e)


def test_auto_streams_only_a_file_backed_set_larger_than_half_the_free_memory():
    cpu = torch.device("cpu")
    free = bt.available_memory(cpu)
    assert free > 0
    assert bt.choose_mode("auto", 10, cpu, "x.npy", "d") == "resident"
    assert bt.choose_mode("auto", free, cpu, "x.npy", "d") == "stream"
    assert bt.choose_mode("auto", free, cpu, None, "d") == "resident"  # nothing to stream from
    assert bt.choose_mode("resident", free, cpu, "x.npy", "d") == "resident"
    with pytest.raises(ValueError, match="--data-mode stream .* dataset 'digits' is held in memory"):
        bt.choose_mode("stream", 10, cpu, None, "digits")
    with pytest.raises(ValueError, match="--data-mode must be one of"):
        bt.choose_mode("disk", 10, cpu, None, "digits")


def test_streamed_rows_come_back_in_batch_order(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 1, 3, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    rows = bt.StreamedRows(str(tmp_path / "x.npy"), 15, torch.device("cpu"), workers=2)
    batches = [torch.tensor([14, 2, 9]), torch.tensor([0]), torch.tensor([5, 3])]
    got = list(rows.batches(batches))
    for idx, b in zip(batches, got):
        assert torch.equal(b, torch.from_numpy(x[idx.numpy()]).float() / 255)


def test_resident_and_streamed_training_are_the_same_training(tmp_path, grey_images):
    from PIL import Image

    from vae_core.data import load_dataset

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i, a in enumerate(grey_images(20, side=28, seed=ord(c))):
            Image.fromarray(a).save(tmp_path / "imgs" / c / f"{i}.png")
    data = load_dataset(str(tmp_path / "imgs"), test_fraction=0.25)
    assert data.train_pixels.dtype == torch.uint8 and data.pixels_file is not None
    mcfg = ModelConfig(input_shape=(1, 28, 28), latent_dim=2, hidden=(16,))
    tcfg = TrainConfig(dataset="imgs", epochs=2, batch_size=8, seed=0, binarize="dynamic")
    res = {
        mode: fit(mcfg, tcfg, data, device="cpu", final_iw_samples=0, data_mode=mode) for mode in ("resident", "stream")
    }
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("seconds", "images_per_s")} for e in h]
    assert strip(res["resident"].history) == strip(res["stream"].history)
    a, b = res["resident"].model.state_dict(), res["stream"].model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "x_train" not in data.__dict__  # training never made a float copy of the whole set
    assert res["stream"].metrics["runtime"]["data_mode"] == "stream"
    assert res["resident"].metrics["runtime"]["data_mode"] == "resident"
