"""Dataset registry: .npz layouts and scaling, image folders, split/fingerprint stability, clear errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from vae_core import data as vd
from vae_core.data import DatasetError, load_dataset


def _npz(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return str(p)


# --- .npz layouts ---------------------------------------------------------------------------


def test_npz_uint8_hw_is_scaled_and_gets_a_channel(tiny_npz):
    raw = np.load(tiny_npz)
    d = load_dataset(tiny_npz)
    assert d.x_train.shape == (96, 1, 8, 8) and d.x_test.shape == (32, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.input_shape == (1, 8, 8) and d.is_image
    np.testing.assert_array_equal(d.x_train[:, 0].numpy(), raw["x_train"].astype(np.float32) / 255)
    assert d.y_train.dtype == torch.int64 and d.y_test.tolist() == raw["y_test"].tolist()
    assert d.in_unit_interval


def test_npz_hwc_is_moved_to_chw(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(10, 6, 5, 3), dtype=np.uint8)  # (N, H, W, C)
    d = load_dataset(_npz(tmp_path, x_train=x[:8], x_test=x[8:]))
    assert d.x_train.shape == (8, 3, 6, 5)
    # pixel (n, h, w) of channel c lands at [n, c, h, w]
    assert d.x_train[2, 1, 4, 3].item() == pytest.approx(x[2, 4, 3, 1] / 255)
    assert d.y_train is None and d.y_test is None


@pytest.mark.parametrize(
    "shape, expect",
    [((10, 3, 6, 5), (3, 6, 5)), ((10, 1, 7, 7), (1, 7, 7)), ((10, 7, 7, 1), (1, 7, 7)), ((10, 20), (20,))],
)
def test_npz_chw_and_flat_layouts(tmp_path, shape, expect):
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    d = load_dataset(_npz(tmp_path, x_train=x[:7], x_test=x[7:]))
    assert d.input_shape == expect and d.is_image == (len(expect) == 3)
    np.testing.assert_array_equal(
        d.x_test.reshape(3, -1).numpy(), (x[7:] if shape[-1] != 1 else x[7:].transpose(0, 3, 1, 2)).reshape(3, -1)
    )


def test_npz_float_passes_through_unscaled(tmp_path):
    x = np.random.default_rng(2).normal(size=(6, 4)) * 10  # float64 outside [0, 1]
    d = load_dataset(_npz(tmp_path, x_train=x[:4], x_test=x[4:]))
    assert d.x_train.dtype == torch.float32 and not d.in_unit_interval
    np.testing.assert_allclose(d.x_train.numpy(), x[:4].astype(np.float32))


# --- .npz errors ----------------------------------------------------------------------------


def test_npz_missing_x_test(tmp_path):
    p = _npz(tmp_path, x_train=np.zeros((4, 3)), y_train=np.zeros(4))
    with pytest.raises(DatasetError, match=r"missing array\(s\) \['x_test'\].*found \['x_train', 'y_train'\]"):
        load_dataset(p)


def test_npz_pickled_object_array_is_refused(tmp_path):
    p = _npz(tmp_path, x_train=np.array([np.zeros(3), "evil"], dtype=object), x_test=np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=r"cannot read as \.npz.*allow_pickle=False"):
        load_dataset(p)


@pytest.mark.parametrize(
    "arrays, msg",
    [
        (
            dict(x_train=np.zeros((4, 8, 8)), x_test=np.zeros((2, 7, 7))),
            r"x_train examples have shape \(1, 8, 8\) but x_test examples have shape \(1, 7, 7\)",
        ),
        (
            dict(x_train=np.zeros((4, 3)), y_train=np.zeros(5), x_test=np.zeros((2, 3))),
            "y_train has 5 labels for 4 images",
        ),
        (
            dict(x_train=np.zeros((4, 3)), x_test=np.zeros((2, 3)), y_test=np.zeros(3)),
            "y_test has 3 labels for 2 images",
        ),
        (dict(x_train=np.array([[0.0, np.nan, 1.0]] * 4), x_test=np.zeros((2, 3))), "x_train contains NaN or inf"),
        (dict(x_train=np.zeros((4, 3)), x_test=np.full((2, 3), np.inf)), "x_test contains NaN or inf"),
        (dict(x_train=np.zeros((4, 3), dtype=complex), x_test=np.zeros((2, 3))), "x_train has dtype complex128"),
        (dict(x_train=np.zeros((4, 3)), x_test=np.zeros((0, 3))), "must both be non-empty"),
        (dict(x_train=np.zeros((4, 2, 3, 5, 6)), x_test=np.zeros((2, 2, 3, 5, 6))), r"expected \(N,D\), \(N,H,W\)"),
        (dict(x_train=np.zeros((4, 5, 6, 7)), x_test=np.zeros((2, 5, 6, 7))), "needs 1, 3 or 4 channels"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, msg):
    p = _npz(tmp_path, **arrays)
    with pytest.raises(DatasetError, match=msg) as e:
        load_dataset(p)
    assert p in str(e.value)


def test_npz_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DatasetError, match="no such .npz file"):
        load_dataset(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DatasetError, match=r"bad\.npz: cannot read as \.npz"):
        load_dataset(str(bad))


# --- image folders --------------------------------------------------------------------------


def _png_folder(root, grey_images, n_per_class=5, size=(8, 8), mode="L", seed=0):
    from PIL import Image

    imgs = []
    for c, cls in enumerate(["cats", "dogs"]):
        (root / cls).mkdir(parents=True)
        for i, a in enumerate(grey_images(n_per_class, side=size[0], seed=seed + c)):
            a = a[:, : size[1]]
            if mode == "RGB":
                a = np.stack([a, 255 - a, a // 2], -1)
            Image.fromarray(a, mode=mode).save(root / cls / f"{i}.png")
            imgs.append((a, c))
    return imgs


def test_image_folder_grey_and_rgb(tmp_path, grey_images):
    imgs = _png_folder(tmp_path / "grey", grey_images)
    d = load_dataset(str(tmp_path / "grey"), test_fraction=0.2)
    assert d.x_train.shape == (8, 1, 8, 8) and d.x_test.shape == (2, 1, 8, 8)
    # the split is a permutation: every image (with its label) appears exactly once
    got = sorted(
        (x.flatten().tolist(), int(y))
        for x, y in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test]))
    )
    want = sorted(((a.astype(np.float32) / 255).flatten().tolist(), c) for a, c in imgs)
    assert got == want
    _png_folder(tmp_path / "rgb", grey_images, mode="RGB", n_per_class=3)
    d = load_dataset(str(tmp_path / "rgb"), test_fraction=0.5)
    assert d.x_train.shape == (3, 3, 8, 8) and d.x_test.shape == (3, 3, 8, 8)


def test_image_folder_errors(tmp_path, grey_images):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not an image folder"):
        load_dataset(str(tmp_path / "empty"))
    _png_folder(tmp_path / "mixed", grey_images, n_per_class=2)
    from PIL import Image

    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "mixed" / "cats" / "big.png")
    with pytest.raises(DatasetError, match="images must share one size"):
        load_dataset(str(tmp_path / "mixed"))


# --- determinism, fingerprints ---------------------------------------------------------------


def test_split_and_fingerprint_are_deterministic(tmp_path, grey_images):
    _png_folder(tmp_path / "f", grey_images, n_per_class=6)
    a, b = load_dataset(str(tmp_path / "f")), load_dataset(str(tmp_path / "f"))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.fingerprint == b.fingerprint
    c = load_dataset(str(tmp_path / "f"), test_fraction=0.5)
    assert len(c.x_test) == 6 and c.fingerprint != a.fingerprint


def test_fingerprint_is_pinned_and_sensitive():
    """A change to the fingerprint recipe orphans every cached checkpoint: pin it."""
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    y = np.array([0, 1])
    fp = vd._build("pinned", x, y, x[:1], y[:1]).fingerprint
    assert fp == "ff227d60837304e2"
    x2 = x.copy()
    x2[1, 2, 3] += 1
    others = {
        vd._build("pinned", x2, y, x[:1], y[:1]).fingerprint,  # one pixel
        vd._build("pinned", x, y[::-1], x[:1], y[:1]).fingerprint,  # labels
        vd._build("pinned", x, None, x[:1], None).fingerprint,  # no labels
        vd._build("other", x, y, x[:1], y[:1]).fingerprint,
    }  # name
    assert fp not in others and len(others) == 4


# --- registry -------------------------------------------------------------------------------


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnist5k': use one of \['cifar10', 'digits'"):
        load_dataset("mnist5k")


def test_torchvision_set_without_data_never_downloads(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(DatasetError, match=r"MNIST not found under .*--data-root.*--download") as e:
        load_dataset("mnist", data_root=str(tmp_path))
    assert str(tmp_path) in str(e.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing fetched


def test_builtin_digits():
    d = load_dataset("digits")
    assert d.x_train.shape == (1438, 1, 8, 8) and d.x_test.shape == (359, 1, 8, 8)  # round(1797 * 0.2)
    assert d.in_unit_interval and d.x_train.max() == 1.0
    assert set(d.y_train.tolist()) == set(range(10))
    assert load_dataset("digits") is d  # memoised per process


def test_builtin_mnist_5k():
    d = load_dataset("mnist-5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.in_unit_interval and set(d.y_test.tolist()) == set(range(10))


# --- binarization ---------------------------------------------------------------------------


def test_eval_targets():
    x = torch.rand(200, 50, generator=torch.Generator().manual_seed(0))
    assert vd.eval_targets(x, "none") is x
    torch.testing.assert_close(vd.eval_targets(x, "fixed"), (x > 0.5).float())
    a, b = vd.eval_targets(x, "dynamic"), vd.eval_targets(x, "dynamic")
    assert torch.equal(a, b) and set(a.unique().tolist()) == {0.0, 1.0}  # one seeded draw
    assert not torch.equal(a, vd.eval_targets(x, "dynamic", seed=1))
    # Bernoulli(x): the mean over 10,000 pixels is within 4 SE of mean(x)
    se = (x * (1 - x)).mean().sqrt() / 100
    assert abs(float(a.mean() - x.mean())) < 4 * se
