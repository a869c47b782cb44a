"""Decoder likelihoods log p(x|z): real log-densities in nats, constants included, summed over pixels.

Each takes the decoder output `out` (B..., *input_shape) and targets x of the same shape and
returns a per-example tensor (B...,). `log_sigma` is only used by the Gaussians.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def _sum_event(t: torch.Tensor, event_dims: int) -> torch.Tensor:
    return t.flatten(start_dim=t.dim() - event_dims).sum(-1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    # log p = x log s(l) + (1-x) log(1-s(l)) = -BCEwithLogits(l, x)
    return -_sum_event(F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none"),
                       event_dims)


def _cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), stable near 0.5.

    C = 2 artanh(1-2l)/(1-2l) for l != 1/2, and 2 at l = 1/2. With l = sigmoid(a):
    1-2l = -tanh(a/2) and artanh(1-2l) = -a/2, so C = a / tanh(a/2).
    """
    small = logits.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(logits), logits)
    log_c = torch.log(safe / torch.tanh(safe / 2))
    # Taylor: x / tanh(x/2) = 2 + x^2/6 + O(x^4)  => log C ~ log 2 + x^2/12
    taylor = math.log(2.0) + logits.pow(2) / 12.0
    return torch.where(small, taylor, log_c)


def continuous_bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    return bernoulli_log_prob(logits, x, event_dims) + _sum_event(_cb_log_norm(logits), event_dims)


def gaussian_log_prob(mean: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor,
                      event_dims: int) -> torch.Tensor:
    # log N(x; m, s^2) = -0.5 ((x-m)/s)^2 - log s - 0.5 log 2pi ; with s = 1 this is -0.5 MSE - const
    z = (x - mean) * torch.exp(-log_sigma)
    return _sum_event(-0.5 * z.pow(2) - log_sigma - 0.5 * LOG_2PI, event_dims)


def mean_of(likelihood: str, out: torch.Tensor) -> torch.Tensor:
    """E[x|z], what a decoded image shows."""
    if likelihood == "bernoulli":
        return torch.sigmoid(out)
    if likelihood == "continuous-bernoulli":
        return torch.distributions.ContinuousBernoulli(logits=out).mean
    return out
