"""The checkpoint header's schema: the one place that turns its stored JSON strings into checked values.

A checkpoint's safetensors metadata holds five JSON strings. `parse_header` returns them as
    model_config, train_config  the configs' to_dict() (every type and size checked by config.py)
    history                     a list of {name: number | list of numbers | null}, one per epoch
    dataset                     {name: str, fingerprint: str, n_train/n_test: int >= 0,
                                 input_shape: list of positive ints, ...}
    metrics                     {elbo, recon, kl, ...: float | None, kl_per_dim: list | None,
                                 active_units/n/iw_samples: int >= 0, diverged: str, ...}
or raises HeaderError(field, problem). A number that is not finite (NaN, inf) becomes None, anywhere,
so what this returns always prints as valid JSON. Unknown keys of dataset and metrics are kept.
No torch here: the app lists checkpoints before torch is loaded.
"""

from __future__ import annotations

import json
import math
import numbers

from .config import ConfigError, ModelConfig, TrainConfig, describe

FIELDS = ("model_config", "train_config", "history", "dataset", "metrics")
METRIC_FLOATS = ("elbo", "recon", "kl", "log_likelihood", "gap_kl_q_posterior")
METRIC_COUNTS = ("active_units", "n", "iw_samples")


class HeaderError(ValueError):
    """One header field is missing or has the wrong structure; str() is '<field> <problem>'."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _finite(v):
    """A number, with NaN and inf as None (ints stay ints: epoch numbers)."""
    return v if isinstance(v, int) or math.isfinite(v) else None


def _number(field: str, v) -> float | None:
    if v is None:
        return None
    if not _is_number(v):
        raise HeaderError(field, f"must be a number or null, got {describe(v)}")
    return _finite(float(v))


def _count(field: str, v) -> int | None:
    if v is None:
        return None
    if not (_is_number(v) and float(v).is_integer() and v >= 0):
        raise HeaderError(field, f"must be a non-negative int, got {describe(v)}")
    return int(v)


def _numbers(field: str, v) -> list | None:
    """A list of numbers; one that is not finite makes the whole list None (it cannot be plotted)."""
    if v is None:
        return None
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise HeaderError(field, f"must be a list of numbers, got {describe(v)}")
    return [float(x) for x in v] if all(math.isfinite(x) for x in v) else None


def _object(field: str, v) -> dict:
    if not isinstance(v, dict):
        raise HeaderError(field, f"must be a JSON object, got {describe(v)}")
    return v


def _clean(v):
    """Any JSON value with its non-finite numbers as None (unknown fields are kept, made printable)."""
    if isinstance(v, float):
        return _finite(v)
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def _config(field: str, cls, v) -> dict:
    try:
        return cls.from_dict(_object(field, v)).to_dict()
    except ConfigError as e:
        raise HeaderError(field, f"is invalid: {e}") from None


def _history(v) -> list:
    if not isinstance(v, list):
        raise HeaderError("history", f"must be a list, got {describe(v)}")
    out = []
    for i, epoch in enumerate(v):
        row = {}
        for k, x in _object(f"history[{i}]", epoch).items():
            where = f"history[{i}].{k}"
            if isinstance(x, list):
                row[k] = _numbers(where, x)
            elif x is None or _is_number(x):
                row[k] = None if x is None else _finite(x)
            else:
                raise HeaderError(where, f"must be a number, a list of numbers or null, got {describe(x)}")
        out.append(row)
    return out


def _dataset(v) -> dict:
    out = _clean(_object("dataset", v))
    for k in ("name", "fingerprint"):
        if k in out and not isinstance(out[k], str):
            raise HeaderError(f"dataset.{k}", f"must be a string, got {describe(out[k])}")
    for k in ("n_train", "n_test"):
        if k in out:
            out[k] = _count(f"dataset.{k}", out[k])
    if "input_shape" in out:
        shape = out["input_shape"]
        if not (
            isinstance(shape, list) and shape and all(_is_number(s) and float(s).is_integer() and s > 0 for s in shape)
        ):
            raise HeaderError("dataset.input_shape", f"must be a list of positive ints, got {describe(shape)}")
        out["input_shape"] = [int(s) for s in shape]
    return out


def _metrics(v) -> dict:
    out = _clean(_object("metrics", v))
    for k in METRIC_FLOATS:
        if k in out:
            out[k] = _number(f"metrics.{k}", out[k])
    for k in METRIC_COUNTS:
        if k in out:
            out[k] = _count(f"metrics.{k}", out[k])
    if "kl_per_dim" in out:  # the raw list: a NaN in it makes it None, not a list holding None
        out["kl_per_dim"] = _numbers("metrics.kl_per_dim", v["kl_per_dim"])
    if "diverged" in out and not isinstance(out["diverged"], str):
        raise HeaderError("metrics.diverged", f"must be a string, got {describe(out['diverged'])}")
    return out


_PARSE = {
    "model_config": lambda v: _config("model_config", ModelConfig, v),
    "train_config": lambda v: _config("train_config", TrainConfig, v),
    "history": _history,
    "dataset": _dataset,
    "metrics": _metrics,
}


def parse_header(meta: dict) -> dict:
    """The five fields of a checkpoint's metadata (JSON strings), parsed and checked."""
    out = {}
    for field in FIELDS:
        if field not in meta:
            raise HeaderError(field, "is missing")
        try:
            value = json.loads(meta[field])
        except (ValueError, TypeError) as e:  # also Python's 4300-digit limit on ints
            raise HeaderError(field, f"is not valid JSON ({e})") from None
        except RecursionError:
            raise HeaderError(field, "is nested too deeply to be read") from None
        try:
            out[field] = _PARSE[field](value)
        except RecursionError:
            raise HeaderError(field, "is nested too deeply to be read") from None
    return out
