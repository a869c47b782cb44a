"""Frozen configs that travel with every checkpoint.

`ModelConfig` rebuilds the network; `TrainConfig` says how it was trained and on what data.
Both round-trip through plain dicts (JSON) so a checkpoint never needs code to be rebuilt.
Every field is converted to its declared type (an int field takes 4 or 4.0, never "4", 4.5 or
true) and sizes are bounded before any model is built: a config read from a file is untrusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
from dataclasses import dataclass

from . import likelihoods

ARCHS = ("mlp", "conv")
LIKELIHOODS = likelihoods.NAMES  # the registry's names, for argparse choices and forms
SIGMA_MODES = ("shared", "per-pixel")
OBJECTIVES = ("elbo", "iwae", "mmd", "ae")
BINARIZE = ("none", "fixed", "dynamic")


class ConfigError(ValueError):
    """A config value is of the wrong type, out of range or inconsistent."""


# Size limits, checked before a model is built: generous for real use, and they keep a crafted
# checkpoint header from allocating gigabytes (the default MNIST MLP has 0.65M parameters).
MAX_LATENT_DIM = 4096
MAX_WIDTH = 65_536  # one hidden layer's width, or one conv layer's channels
MAX_LAYERS = 16  # hidden layers
MAX_INPUT_DIM = 2**24  # values per example (product of input_shape): 16.7M
MAX_PARAMETERS = 100_000_000  # 400 MB of float32 weights
MAX_TRAIN_SAMPLES = 1000  # mc_samples / iw_samples per example while training (memory x K)
MAX_EVAL_SAMPLES = 100_000  # samples per example when evaluating (chunked: time, not memory, grows)
MAX_SEED = 2**63 - 1  # torch.manual_seed takes a 64-bit seed


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def describe(v) -> str:
    """A bad value as messages name it: its JSON type, and the value itself when short."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    kind = (
        "an int"
        if isinstance(v, numbers.Integral)
        else "a float"
        if isinstance(v, numbers.Real)
        else "a string"
        if isinstance(v, str)
        else "a list"
        if isinstance(v, (list, tuple))
        else "a JSON object"
        if isinstance(v, dict)
        else f"a {type(v).__name__}"
    )
    return f"{kind} ({v!r})" if isinstance(v, (str, numbers.Real)) and len(repr(v)) <= 40 else kind


def _as_int(name: str, v) -> int:
    """An int, or a float with an integral value (4.0); never a string, a bool or 4.5."""
    if not isinstance(v, bool) and (
        isinstance(v, numbers.Integral) or (isinstance(v, numbers.Real) and float(v).is_integer())
    ):
        return int(v)
    raise ConfigError(f"{name} must be an int, got {describe(v)}")


def _as_float(name: str, v) -> float:
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    raise ConfigError(f"{name} must be a finite number, got {describe(v)}")


def _as_str(name: str, v) -> str:
    _check(isinstance(v, str), f"{name} must be a string, got {describe(v)}")
    return v


def _as_ints(name: str, v) -> tuple[int, ...]:
    _check(isinstance(v, (list, tuple)), f"{name} must be a list of ints, got {describe(v)}")
    _check(len(v) <= 64, f"{name} must have at most 64 entries, got {len(v)}")
    return tuple(_as_int(f"{name}[{i}]", x) for i, x in enumerate(v))


# field annotation (a string: `from __future__ import annotations`) -> converter
_CONVERT = {"int": _as_int, "float": _as_float, "str": _as_str, "tuple[int, ...]": _as_ints}


def _mlp_params(sizes: list[int]) -> int:
    """Weights and biases of vae_core.model._mlp(sizes)."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


class _DictMixin:
    def _convert_fields(self) -> None:
        """Each field to its declared type, or a ConfigError naming the field (frozen: setattr)."""
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _CONVERT[f.type](f.name, getattr(self, f.name)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict):
        _check(isinstance(d, dict), f"{cls.__name__} must be a JSON object, got {describe(d)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        _check(not unknown, f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
        return cls(**d)  # __post_init__ converts lists to tuples and checks every type

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
        self._convert_fields()
        _check(
            len(self.input_shape) in (1, 3) and all(s > 0 for s in self.input_shape),
            f"input_shape must be (D,) or (C, H, W) of positive ints, got {self.input_shape}",
        )
        _check(
            self.input_dim <= MAX_INPUT_DIM,
            f"input_shape {self.input_shape} has {self.input_dim:,} "
            f"values per example, more than the limit of {MAX_INPUT_DIM:,} (MAX_INPUT_DIM)",
        )
        _check(self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}")
        _check(
            self.latent_dim <= MAX_LATENT_DIM,
            f"latent_dim must be <= {MAX_LATENT_DIM} (MAX_LATENT_DIM), got {self.latent_dim}",
        )
        _check(self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}")
        _check(
            len(self.hidden) <= MAX_LAYERS,
            f"hidden has {len(self.hidden)} layers, more than the limit of {MAX_LAYERS} (MAX_LAYERS)",
        )
        _check(all(h > 0 for h in self.hidden), f"hidden sizes must be positive, got {self.hidden}")
        _check(all(c > 0 for c in self.conv_channels), f"conv_channels must be positive, got {self.conv_channels}")
        _check(
            all(w <= MAX_WIDTH for w in self.hidden + self.conv_channels),
            f"hidden widths and conv_channels must be <= {MAX_WIDTH:,} (MAX_WIDTH), got hidden "
            f"{self.hidden}, conv_channels {self.conv_channels}",
        )
        _check(self.likelihood in LIKELIHOODS, f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        _check(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        _check(self.sigma_mode in SIGMA_MODES, f"sigma_mode must be one of {SIGMA_MODES}, got {self.sigma_mode!r}")
        if self.arch == "conv":
            _check(
                len(self.input_shape) == 3 and self.input_shape[1:] in ((28, 28), (32, 32)),
                f"the conv arch takes 28x28 or 32x32 images, got input_shape {self.input_shape}",
            )
            _check(len(self.conv_channels) == 2, "conv_channels must have two entries")
        n = self.n_parameters()
        _check(
            n <= MAX_PARAMETERS,
            f"this model would have {n:,} parameters, more than the limit of "
            f"{MAX_PARAMETERS:,} (MAX_PARAMETERS): reduce hidden, conv_channels or latent_dim",
        )

    @property
    def input_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    def n_parameters(self) -> int:
        """The number of trainable parameters vae_core.model.VAE(self) has, without building it."""
        d, k, hid = self.input_dim, self.latent_dim, list(self.hidden)
        if self.arch == "mlp":
            n = _mlp_params([d, *hid, 2 * k]) + _mlp_params([k, *hid, d])
        else:
            c, h = self.input_shape[0], self.input_shape[1]
            c1, c2 = self.conv_channels
            flat = c2 * (h // 4) ** 2
            convs = (c * c1 * 16 + c1) + (c1 * c2 * 16 + c2)  # two 4x4 convs
            deconvs = (c2 * c1 * 16 + c1) + (c1 * c * 16 + c)  # two 4x4 transposed convs
            n = convs + _mlp_params([flat, *hid, 2 * k]) + _mlp_params([k, *hid, flat]) + deconvs
        if likelihoods.get(self.likelihood).learned_sigma:
            n += 1 if self.sigma_mode == "shared" else d
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
        self._convert_fields()
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(0 <= self.seed <= MAX_SEED, f"seed must be in [0, 2**63 - 1], got {self.seed}")
        _check(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        _check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _check(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _check(self.free_bits >= 0, f"free_bits must be >= 0, got {self.free_bits}")
        for name in ("mc_samples", "iw_samples"):
            v = getattr(self, name)
            _check(v >= 1, f"{name} must be >= 1, got {v}")
            _check(v <= MAX_TRAIN_SAMPLES, f"{name} must be <= {MAX_TRAIN_SAMPLES} (MAX_TRAIN_SAMPLES), got {v}")
        _check(self.mmd_weight >= 0, f"mmd_weight must be >= 0, got {self.mmd_weight}")
        _check(self.binarize in BINARIZE, f"binarize must be one of {BINARIZE}, got {self.binarize!r}")
        _check(0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), got {self.test_fraction}")
        _check(self.max_train >= 0, f"max_train must be >= 0, got {self.max_train}")


def config_key(model_cfg: ModelConfig, train_cfg: TrainConfig, data_fingerprint: str) -> str:
    """Cache key: hash of both configs and the data they were trained on."""
    blob = json.dumps(
        {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "data": data_fingerprint}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_hidden(text: str, name: str = "hidden widths") -> tuple[int, ...]:
    """Layer widths typed by a person (the command line's --hidden, the Train page's field):
    "400" -> (400,), "512, 256" -> (512, 256), "" / "none" / "linear" -> () (a linear encoder and
    decoder). A trailing comma is forgiven. ConfigError naming `name` for anything else; the
    limits on the sizes are ModelConfig's."""
    s = text.strip()
    if s.lower() in ("", "none", "linear"):
        return ()
    parts = [p.strip() for p in s.split(",")]
    if parts[-1] == "":
        parts.pop()
    if not parts or not all(p.isascii() and p.isdecimal() and int(p) > 0 for p in parts):
        raise ConfigError(
            f"{name}: comma-separated positive integers like 400 or 512,256 ('' or 'linear' for none), got {text!r}"
        )
    return tuple(int(p) for p in parts)
