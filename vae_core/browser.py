"""Export a decoder (MLP or conv) for decoding in the browser (vae_core/js/decode.mjs).

The payload is compact JSON: per layer its shape and its weight/bias as base64 of little-endian
float32 bytes ("<f4", about 1.7 MB for 16-400-784 against ~6 MB as JSON floats) or float16 ("<f2",
half that, for the static export), the input shape and, as "output", the name of the transform that
turns the last layer into E[x|z]: the likelihood's `browser_transform` (vae_core.likelihoods), which
decode.mjs implements under that name (sigmoid, continuous-bernoulli-mean, identity).

Two formats, one per decoder of vae_core.model:
    vae-mlp-decoder/1   layers: h <- relu(W h + b), W (out, in) row-major as nn.Linear keeps it
    vae-conv-decoder/1  the same Linear layers (ConvDecoder.fc, ReLU after the last too), then the
                        vector viewed as `unflatten` (C, H, W), then `deconvs`: ConvTranspose2d
                        layers, weight (in, out, k, k) as PyTorch keeps it, with stride and padding
"""

from __future__ import annotations

import base64
import hashlib
import itertools

import numpy as np
import torch
from torch import nn

from . import likelihoods
from .model import VAE, ConvDecoder

MLP_FORMAT = "vae-mlp-decoder/1"
CONV_FORMAT = "vae-conv-decoder/1"
DTYPES = ("<f4", "<f2")  # weights as little-endian float32, or float16 (half the bytes)


class BrowserDecodingError(ValueError):
    """The model's decoder cannot be exported for in-browser decoding."""


def _linear_relu(mods: list[nn.Module], where: str) -> list[tuple[nn.Linear, bool]]:
    """(layer, relu_after) for a list of Linear/ReLU modules; raises BrowserDecodingError otherwise."""
    layers: list[tuple[nn.Linear, bool]] = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            layers.append((m, False))
        elif isinstance(m, nn.ReLU) and layers and not layers[-1][1] and isinstance(mods[i - 1], nn.Linear):
            layers[-1] = (layers[-1][0], True)
        else:
            raise BrowserDecodingError(
                f"in-browser decoding supports Linear and ReLU layers only, found {type(m).__name__} at {where}[{i}]"
            )
    if not layers:
        raise BrowserDecodingError(f"the decoder has no Linear layer in {where}")
    for (a, _), (b, _) in itertools.pairwise(layers):
        if a.out_features != b.in_features:
            raise BrowserDecodingError(f"layer sizes do not chain: {a.out_features} -> {b.in_features}")
    return layers


def _mlp_layers(model: VAE) -> list[tuple[nn.Linear, bool]]:
    if not isinstance(model.decoder, nn.Sequential):
        raise BrowserDecodingError(
            f"in-browser decoding needs a Sequential MLP decoder, got {type(model.decoder).__name__}"
        )
    layers = _linear_relu(list(model.decoder), "decoder")
    if layers[-1][1]:
        raise BrowserDecodingError("the decoder's last Linear must have no activation after it")
    if layers[0][0].in_features != model.cfg.latent_dim or layers[-1][0].out_features != model.cfg.input_dim:
        raise BrowserDecodingError("decoder input/output sizes do not match latent_dim/input_shape")
    return layers


def _conv_layers(model: VAE) -> tuple[list[tuple[nn.Linear, bool]], list[tuple[nn.ConvTranspose2d, bool]]]:
    """ConvDecoder: fc = Sequential(Sequential(Linear, ReLU, ..., Linear), ReLU), then deconvs."""
    dec = model.decoder
    if not isinstance(dec, ConvDecoder):
        raise BrowserDecodingError(f"expected vae_core's ConvDecoder, got {type(dec).__name__}")
    fc_mods = [m for sub in dec.fc for m in (sub if isinstance(sub, nn.Sequential) else [sub])]
    fc = _linear_relu(fc_mods, "decoder.fc")
    if fc[0][0].in_features != model.cfg.latent_dim or fc[-1][0].out_features != int(np.prod(dec.shape)):
        raise BrowserDecodingError("decoder.fc sizes do not match latent_dim and the deconvs' input")
    deconvs: list[tuple[nn.ConvTranspose2d, bool]] = []
    mods = list(dec.deconvs)
    for i, m in enumerate(mods):
        if isinstance(m, nn.ConvTranspose2d):
            if (
                m.groups != 1
                or m.dilation != (1, 1)
                or m.output_padding != (0, 0)
                or len(set(m.kernel_size)) != 1
                or len(set(m.stride)) != 1
                or len(set(m.padding)) != 1
            ):
                raise BrowserDecodingError(
                    f"decoder.deconvs[{i}]: only square kernels, strides and paddings "
                    "without groups, dilation or output_padding run in the browser"
                )
            deconvs.append((m, False))
        elif isinstance(m, nn.ReLU) and deconvs and not deconvs[-1][1] and isinstance(mods[i - 1], nn.ConvTranspose2d):
            deconvs[-1] = (deconvs[-1][0], True)
        else:
            raise BrowserDecodingError(
                f"in-browser decoding supports ConvTranspose2d and ReLU only, found "
                f"{type(m).__name__} at decoder.deconvs[{i}]"
            )
    if not deconvs or deconvs[-1][1]:
        raise BrowserDecodingError("the decoder must end with a ConvTranspose2d without activation")
    return fc, deconvs


def _check(model: VAE):
    """(format, linear layers, deconv layers) of the model's decoder, or BrowserDecodingError."""
    arch = getattr(model.cfg, "arch", None)
    if arch == "mlp":
        return MLP_FORMAT, _mlp_layers(model), []
    if arch == "conv":
        return (CONV_FORMAT, *_conv_layers(model))
    raise BrowserDecodingError(f"in-browser decoding needs an MLP or conv decoder; this model's arch is {arch!r}")


def supports_browser_decoding(model: VAE) -> bool:
    try:
        _check(model)
        return True
    except BrowserDecodingError:
        return False


def _b64(t: torch.Tensor, dtype: str) -> tuple[str, bytes]:
    raw = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy(), dtype=dtype).tobytes()
    return base64.b64encode(raw).decode("ascii"), raw


def decoder_payload(model: VAE, value_range: tuple[float, float] = (0.0, 1.0), dtype: str = "<f4") -> dict:
    """The decoder as JSON-ready data for the browser; see the module docstring for the format.

    value_range: the E[x|z] values shown black and white (identity outputs are clipped to it).
    dtype: "<f4" (exact weights) or "<f2" (float16, half the bytes; the static export's choice).
    The "id" is a content hash, so the browser can keep parsed weights across reruns.
    """
    fmt, layers, deconvs = _check(model)
    if dtype not in DTYPES:
        raise BrowserDecodingError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise BrowserDecodingError(f"value_range must be (low, high) with high > low, got {value_range}")
    digest = hashlib.sha256()

    def weights(m) -> dict:
        bias = m.bias if m.bias is not None else torch.zeros(m.weight.shape[0 if isinstance(m, nn.Linear) else 1])
        (w64, w_raw), (b64, b_raw) = _b64(m.weight, dtype), _b64(bias, dtype)
        digest.update(w_raw)
        digest.update(b_raw)
        return {"weight": w64, "bias": b64}

    out_layers = [
        {"in": lin.in_features, "out": lin.out_features, "relu": relu, **weights(lin)}  # W (out, in)
        for lin, relu in layers
    ]
    meta = {
        "format": fmt,
        "latent_dim": model.cfg.latent_dim,
        "input_shape": list(model.cfg.input_shape),
        "output": likelihoods.get(model.cfg.likelihood).browser_transform,
        "value_range": [lo, hi],
        "dtype": dtype,
    }
    extra = {}
    if fmt == CONV_FORMAT:
        extra = {
            "unflatten": [int(s) for s in model.decoder.shape],
            "deconvs": [
                {
                    "in": d.in_channels,
                    "out": d.out_channels,
                    "kernel": d.kernel_size[0],
                    "stride": d.stride[0],
                    "padding": d.padding[0],
                    "relu": relu,
                    **weights(d),
                }  # W (in, out, k, k)
                for d, relu in deconvs
            ],
        }
        meta["unflatten"] = extra["unflatten"]
    digest.update(repr(sorted(meta.items())).encode())
    return {**meta, **extra, "id": digest.hexdigest()[:16], "layers": out_layers}
