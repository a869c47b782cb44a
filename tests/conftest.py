"""Shared tiny fixtures: seeded, made here, nothing downloaded. Other test files add their own."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import _build


def grey_images(n: int, side: int = 8, seed: int = 0) -> np.ndarray:
    """(n, side, side) uint8 blobs: a bright square at a random place on a dark noisy field."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, size=(n, side, side))
    for img, (r, c) in zip(x, rng.integers(0, side - 3, size=(n, 2))):
        img[r : r + 3, c : c + 3] = 220
    return x.astype(np.uint8)


@pytest.fixture(name="grey_images")
def _grey_images_fixture():
    """The generator above, for tests that build their own files."""
    return grey_images


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny tensors on 2 shared cores: intra-op threads only add contention (measured 30x slower
    for a 300x300 cdist under load with 2 threads vs 1)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_npz(tmp_path):
    """An .npz dataset file: 96 train / 32 test 8x8 uint8 images with labels."""
    x = grey_images(128)
    y = np.arange(128) % 4
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return str(path)


@pytest.fixture
def tiny_data():
    """In-memory flat Dataset (N, 64) in [0, 1]: 96 train / 32 test."""
    x = grey_images(128).reshape(128, 64)
    return _build("tiny", x[:96], None, x[96:], None)


@pytest.fixture
def tiny_cfgs():
    """A 64-16-2 Bernoulli MLP and one quick epoch."""
    return (
        ModelConfig(input_shape=(64,), latent_dim=2, hidden=(16,)),
        TrainConfig(dataset="tiny", epochs=1, batch_size=32, lr=1e-3, seed=0),
    )


@pytest.fixture
def linear_gaussian():
    """Factory: a float64 linear VAE p(x|z) = N(Wz + b, s^2 I) whose p(x) and p(z|x) are closed-form.

    The encoder is set to the exact posterior mean map with variances widened by e^widen (and the
    mean map perturbed by `perturb`), so q(z|x) != p(z|x) but importance sampling converges quickly.
    Returns (model, W (D,k), b (D,), s).
    """
    import torch

    from vae_core.model import VAE

    def make(d=5, k=2, s=0.6, widen=0.3, perturb=0.02, seed=0):
        torch.manual_seed(seed)
        m = VAE(ModelConfig(input_shape=(d,), latent_dim=k, hidden=(), likelihood="gaussian", sigma=s)).double()
        with torch.no_grad():
            m.log_sigma.fill_(torch.tensor(s, dtype=torch.float64).log())  # exact, not float32 log
            w, b = m.decoder[0].weight, m.decoder[0].bias  # (D, k), (D,)
            w.normal_(0, 1.0)
            b.normal_(0, 0.5)
            # p(z|x) = N(A (x - b), S),  S = (I + W^T W / s^2)^-1,  A = S W^T / s^2
            cov = torch.linalg.inv(torch.eye(k, dtype=w.dtype) + w.T @ w / s**2)
            a = cov @ w.T / s**2 + perturb * torch.randn(k, d, dtype=w.dtype)
            enc = m.encoder[0]  # Linear(D, 2k): rows [:k] -> mu, rows [k:] -> logvar
            enc.weight.zero_()
            enc.weight[:k] = a
            enc.bias[:k] = -a @ b
            enc.bias[k:] = cov.diagonal().log() + widen
        return m.eval(), w.detach().clone(), b.detach().clone(), s

    return make


# --- bad checkpoint files (issue 9): one of every kind, built from a good one ----------------------

BAD_HEADERS = {  # file name -> header fields replaced (JSON strings, as safetensors stores them)
    "metrics_list.safetensors": {"metrics": "[]"},
    "model_config_empty.safetensors": {"model_config": "{}"},
    "train_config_null.safetensors": {"train_config": "null"},
    "elbo_text.safetensors": {"metrics": '{"elbo": "abc"}'},
    "latent_dim_text.safetensors": {"model_config": '{"input_shape": [1, 28, 28], "latent_dim": "4"}'},
    "hidden_huge.safetensors": {
        "model_config": '{"input_shape": [1, 28, 28], "latent_dim": 2, "hidden": [1000000000]}'
    },
    "dataset_list.safetensors": {"dataset": "[]"},
}
OTHER_BAD = ("nan_weights.safetensors", "truncated.safetensors", "pickle.safetensors")


def copy_with(src: str, dst: str, header: dict | None = None, nan: bool = False) -> str:
    """dst = src with some header fields replaced, or with its first tensor set to NaN."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(src, framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(header or {})
    if nan:
        first = sorted(tensors)[0]
        tensors[first] = tensors[first].clone().fill_(float("nan"))
    save_file(tensors, dst, metadata=meta)
    return dst


def write_bad_checkpoints(folder, good: str) -> list[str]:
    """Beside `good` in `folder`: every BAD_HEADERS file, NaN weights, a truncated file and a pickle."""
    import os

    for name, fields in BAD_HEADERS.items():
        copy_with(good, os.path.join(folder, name), fields)
    copy_with(good, os.path.join(folder, "nan_weights.safetensors"), nan=True)
    with open(good, "rb") as f, open(os.path.join(folder, "truncated.safetensors"), "wb") as out:
        out.write(f.read()[:300])
    with open(os.path.join(folder, "pickle.safetensors"), "wb") as out:
        out.write(b"\x80\x04\x95" + b"\x00" * 40)
    return list(BAD_HEADERS) + list(OTHER_BAD)


@pytest.fixture(name="bad_checkpoints", scope="session")
def _bad_checkpoints_fixture():
    """write_bad_checkpoints, for test modules (a conftest is not imported by name)."""
    return write_bad_checkpoints


@pytest.fixture(name="copy_checkpoint", scope="session")
def _copy_checkpoint_fixture():
    """copy_with, for test modules."""
    return copy_with


def seeded_vae(folder, name: str, dataset: str, **cfg) -> str:
    """An untrained seeded VAE for `dataset` (ModelConfig fields in cfg), saved as folder/name.safetensors;
    its decoder weights x3 give contrasted images, so a slider drag visibly changes them."""
    import torch

    from vae_core.checkpoints import save_checkpoint
    from vae_core.data import load_dataset
    from vae_core.model import VAE

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=load_dataset(dataset).input_shape, **cfg))
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    path = str(folder / f"{name}.safetensors")
    save_checkpoint(path, model, TrainConfig(dataset=dataset, epochs=1, binarize="dynamic"))
    return path


@pytest.fixture(name="seeded_vae", scope="session")
def _seeded_vae_fixture():
    """seeded_vae, for test modules."""
    return seeded_vae
