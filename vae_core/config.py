"""Frozen configs that travel with every checkpoint.

`ModelConfig` rebuilds the network; `TrainConfig` says how it was trained and on what data.
Both round-trip through plain dicts (JSON) so a checkpoint never needs code to be rebuilt.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

ARCHS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian", "gaussian-learned")
SIGMA_MODES = ("shared", "per-pixel")
OBJECTIVES = ("elbo", "iwae", "mmd", "ae")
BINARIZE = ("none", "fixed", "dynamic")


class ConfigError(ValueError):
    """A config value is out of range or inconsistent."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


class _DictMixin:
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        _check(not unknown, f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_DictMixin):
    input_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W); flat data uses (D,)
    latent_dim: int = 20
    arch: str = "mlp"
    hidden: tuple[int, ...] = (400,)  # MLP widths; () = linear encoder and decoder
    conv_channels: tuple[int, ...] = (32, 64)  # conv arch: channels of the two stride-2 convs
    likelihood: str = "bernoulli"
    sigma: float = 1.0  # fixed-sigma Gaussian: sigma=1 gives 0.5*MSE + const per pixel
    sigma_mode: str = "shared"  # gaussian-learned: one sigma, or one per pixel

    def __post_init__(self):
        _check(len(self.input_shape) in (1, 3) and all(int(s) > 0 for s in self.input_shape),
               f"input_shape must be (D,) or (C, H, W) of positive ints, got {self.input_shape}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        _check(int(self.latent_dim) >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        _check(self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}")
        _check(all(h > 0 for h in self.hidden), f"hidden sizes must be positive, got {self.hidden}")
        _check(self.likelihood in LIKELIHOODS,
               f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        _check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        _check(self.sigma_mode in SIGMA_MODES,
               f"sigma_mode must be one of {SIGMA_MODES}, got {self.sigma_mode!r}")
        if self.arch == "conv":
            _check(len(self.input_shape) == 3 and self.input_shape[1:] in ((28, 28), (32, 32)),
                   f"the conv arch takes 28x28 or 32x32 images, got input_shape {self.input_shape}")
            _check(len(self.conv_channels) == 2, "conv_channels must have two entries")

    @property
    def input_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n


@dataclass(frozen=True)
class TrainConfig(_DictMixin):
    dataset: str = "mnist-5k"  # registry name, a .npz path or an image folder
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    objective: str = "elbo"  # elbo | iwae (K=iw_samples) | mmd (InfoVAE) | ae (plain autoencoder)
    beta: float = 1.0  # weight on KL
    warmup_epochs: float = 0.0  # beta ramps linearly 0 -> beta over this many epochs
    free_bits: float = 0.0  # nats: minimum KL per latent dim (batch-averaged), Kingma et al. 2016
    mc_samples: int = 1  # L: samples of z per x for the reconstruction term
    iw_samples: int = 5  # K for the IWAE training objective
    mmd_weight: float = 100.0  # lambda on MMD(q(z) || p(z)) for the mmd objective
    binarize: str = "none"  # none | fixed (x>0.5) | dynamic (resample Bernoulli(x) each epoch)
    test_fraction: float = 0.2  # for datasets without their own test split
    max_train: int = 0  # 0 = all; otherwise keep the first N of the (shuffled) train split

    def __post_init__(self):
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.objective in OBJECTIVES,
               f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        _check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _check(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _check(self.free_bits >= 0, f"free_bits must be >= 0, got {self.free_bits}")
        _check(self.mc_samples >= 1, f"mc_samples must be >= 1, got {self.mc_samples}")
        _check(self.iw_samples >= 1, f"iw_samples must be >= 1, got {self.iw_samples}")
        _check(self.mmd_weight >= 0, f"mmd_weight must be >= 0, got {self.mmd_weight}")
        _check(self.binarize in BINARIZE, f"binarize must be one of {BINARIZE}, got {self.binarize!r}")
        _check(0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(self.max_train >= 0, f"max_train must be >= 0, got {self.max_train}")


def config_key(model_cfg: ModelConfig, train_cfg: TrainConfig, data_fingerprint: str) -> str:
    """Cache key: hash of both configs and the data they were trained on."""
    blob = json.dumps({"model": model_cfg.to_dict(), "train": train_cfg.to_dict(),
                       "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
