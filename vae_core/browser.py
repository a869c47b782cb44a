"""Export an MLP decoder for decoding in the browser (app/components/latent_decoder).

The payload is compact JSON: per Linear layer its shape and its weight/bias as base64 of
little-endian float32 bytes (about 1.7 MB for 16-400-784, against ~6 MB as JSON floats), the
input shape and the output transform that turns the last layer into E[x|z]:

    bernoulli                 sigmoid(a)
    continuous-bernoulli      lam/(2 lam - 1) + 1/(2 artanh(1 - 2 lam)), lam = sigmoid(a)
                              = 1/(1 - e^-a) - 1/a, which is 1/2 + a/12 near a = 0
    gaussian(-learned)        identity

The JS side (app/components/latent_decoder/decode.mjs) computes h <- relu(W h + b) per layer,
W stored (out, in) row-major exactly as nn.Linear keeps it.
"""
from __future__ import annotations

import base64
import hashlib

import numpy as np
import torch
from torch import nn

from .model import VAE

FORMAT = "vae-mlp-decoder/1"
OUTPUT_TRANSFORMS = {
    "bernoulli": "sigmoid",
    "continuous-bernoulli": "continuous-bernoulli-mean",
    "gaussian": "identity",
    "gaussian-learned": "identity",
}


class BrowserDecodingError(ValueError):
    """The model's decoder cannot be exported for in-browser decoding."""


def _linear_layers(model: VAE) -> list[tuple[nn.Linear, bool]]:
    """(layer, relu_after) for an nn.Sequential of Linear/ReLU; raises BrowserDecodingError otherwise."""
    if getattr(model.cfg, "arch", None) != "mlp" or not isinstance(model.decoder, nn.Sequential):
        raise BrowserDecodingError(
            f"in-browser decoding needs an MLP decoder; this model's arch is {model.cfg.arch!r} "
            "(decode on the server instead)")
    mods = list(model.decoder)
    layers: list[tuple[nn.Linear, bool]] = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            layers.append((m, False))
        elif isinstance(m, nn.ReLU) and layers and not layers[-1][1] and isinstance(mods[i - 1], nn.Linear):
            layers[-1] = (layers[-1][0], True)
        else:
            raise BrowserDecodingError(
                f"in-browser decoding supports Linear and ReLU layers only, found {type(m).__name__} "
                f"at decoder[{i}]")
    if not layers:
        raise BrowserDecodingError("the decoder has no Linear layer")
    if layers[-1][1]:
        raise BrowserDecodingError("the decoder's last Linear must have no activation after it")
    for (a, _), (b, _) in zip(layers[:-1], layers[1:]):
        if a.out_features != b.in_features:
            raise BrowserDecodingError(f"layer sizes do not chain: {a.out_features} -> {b.in_features}")
    if layers[0][0].in_features != model.cfg.latent_dim or layers[-1][0].out_features != model.cfg.input_dim:
        raise BrowserDecodingError("decoder input/output sizes do not match latent_dim/input_shape")
    return layers


def supports_browser_decoding(model: VAE) -> bool:
    try:
        _linear_layers(model)
        return model.cfg.likelihood in OUTPUT_TRANSFORMS
    except BrowserDecodingError:
        return False


def _b64_f32(t: torch.Tensor) -> tuple[str, bytes]:
    raw = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy(), dtype="<f4").tobytes()
    return base64.b64encode(raw).decode("ascii"), raw


def decoder_payload(model: VAE, value_range: tuple[float, float] = (0.0, 1.0)) -> dict:
    """The decoder as JSON-ready data for the browser; see the module docstring for the format.

    value_range: the E[x|z] values shown black and white (identity outputs are clipped to it).
    The "id" is a content hash, so the browser can keep parsed weights across reruns.
    """
    layers = _linear_layers(model)
    like = model.cfg.likelihood
    if like not in OUTPUT_TRANSFORMS:
        raise BrowserDecodingError(f"no in-browser output transform for likelihood {like!r}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise BrowserDecodingError(f"value_range must be (low, high) with high > low, got {value_range}")
    digest = hashlib.sha256()
    out_layers = []
    for lin, relu in layers:
        w64, w_raw = _b64_f32(lin.weight)  # (out, in)
        if lin.bias is not None:
            b64, b_raw = _b64_f32(lin.bias)  # (out,)
        else:
            b64, b_raw = _b64_f32(torch.zeros(lin.out_features))
        digest.update(w_raw)
        digest.update(b_raw)
        out_layers.append({"in": lin.in_features, "out": lin.out_features, "relu": relu,
                           "weight": w64, "bias": b64})
    meta = {"format": FORMAT, "latent_dim": model.cfg.latent_dim,
            "input_shape": list(model.cfg.input_shape), "output": OUTPUT_TRANSFORMS[like],
            "value_range": [lo, hi]}
    digest.update(repr(sorted(meta.items())).encode())
    return {**meta, "id": digest.hexdigest()[:16], "layers": out_layers}
