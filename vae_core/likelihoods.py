"""Decoder likelihoods p(x|z): the one registry where a likelihood's name is looked up.

Each `Likelihood` in REGISTRY declares everything the other layers need:

    log_prob(out, log_sigma, x, event_dims)  log p(x|z) in nats, constants included, summed over the
                                             event_dims pixel dims: out (B..., *shape) and x
                                             broadcastable -> (B...,); log_sigma: Gaussians only
    mean(out)                                E[x|z], what a decoded image shows
    unit_interval                            the data must lie in [0, 1] (data.check_for_likelihood)
    learned_sigma                            the model trains log sigma (ModelConfig.sigma_mode)
    binarize_default, binarize_options       the binarization when none is asked for, and the ones
                                             a form offers for it (binarize_for)
    describe(binarize)                       which data a log-density refers to (CLI and UI)
    browser_transform                        the name under which vae_core/js/decode.mjs implements
                                             `mean` (the browser receives it as data: browser.py)

Adding a likelihood is one entry below plus its reference row in tests/test_likelihoods.py (the
test fails for an entry without one). config, model, data, browser and the CLI read this registry.

Importable without torch: config validates names here in processes that never load torch (the
app's first paint, checkpoint headers). The functions use tensor methods; the one torch function
needed is imported when called.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LOG_2PI = math.log(2 * math.pi)

# What binarized targets are (data.eval_targets and batches.targets make them); "none" keeps the data
BINARIZED_DATA = {
    "fixed": "binarized data (x > 0.5)",
    "dynamic": "stochastically binarized data (test set: one seeded draw)",
}


def _sum_event(t: torch.Tensor, event_dims: int) -> torch.Tensor:
    return t.flatten(start_dim=t.dim() - event_dims).sum(-1)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    from torch.nn.functional import binary_cross_entropy_with_logits as bce  # see the module docstring

    # log p = x log s(l) + (1-x) log(1-s(l)) = -BCEwithLogits(l, x)
    return -_sum_event(bce(logits, x.expand_as(logits), reduction="none"), event_dims)


def _cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), stable near 0.5.

    C = 2 artanh(1-2l)/(1-2l) for l != 1/2, and 2 at l = 1/2. With l = sigmoid(a):
    1-2l = -tanh(a/2) and artanh(1-2l) = -a/2, so C = a / tanh(a/2).
    """
    small = logits.abs() < 1e-3
    safe = logits.masked_fill(small, 1.0)
    log_c = (safe / (safe / 2).tanh()).log()
    # Taylor: x / tanh(x/2) = 2 + x^2/6 + O(x^4)  => log C ~ log 2 + x^2/12
    taylor = math.log(2.0) + logits.pow(2) / 12.0
    return taylor.where(small, log_c)


def continuous_bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    return bernoulli_log_prob(logits, x, event_dims) + _sum_event(_cb_log_norm(logits), event_dims)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] of the continuous Bernoulli, exact at every logit a (20 -> 0.95, -30 -> 1/30):

        E[x] = lam/(2 lam - 1) + 1/(2 artanh(1 - 2 lam)),  lam = sigmoid(a)   (Loaiza-Ganem & Cunningham 2019)
             = 1/(1 - e^-a) - 1/a                                            (artanh(1 - 2 lam) = -a/2)

    torch.distributions.ContinuousBernoulli(logits=a).mean clamps lam to [eps, 1 - eps], which in
    float32 is |a| <= 15.9: it shows 0.937 at a = 20. Near a = 0 the two terms (~ +-1/a) cancel, with
    an error of about 2 eps/|a|, so below a cut-off c the series of their difference (Bernoulli numbers
    B_2n / (2n)!) is used instead; its first omitted term is a^9/47900160:

        1/2 + a/12 - a^3/720 + a^5/30240 - a^7/1209600

    c = 1 in float32 (errors <= 1.5e-7 and 2.1e-8) and c = 0.1 in float64 (2.2e-15 and 2e-17).
    vae_core/js/decode.mjs ("continuous-bernoulli-mean") computes the same in float64.
    """
    cut = 0.1 if logits.element_size() >= 8 else 1.0  # float64, else float32 (or half)
    small = logits.abs() < cut
    a = logits.masked_fill(small, 1.0)  # the exact branch never sees 0
    exact = -(-a).expm1().reciprocal() - a.reciprocal()
    a2 = logits * logits
    series = 0.5 + logits * (1 / 12 + a2 * (-1 / 720 + a2 * (1 / 30240 - a2 / 1209600)))
    return series.where(small, exact)


def gaussian_log_prob(mean: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor, event_dims: int) -> torch.Tensor:
    # log N(x; m, s^2) = -0.5 ((x-m)/s)^2 - log s - 0.5 log 2pi ; with s = 1 this is -0.5 MSE - const
    z = (x - mean) * (-log_sigma).exp()
    return _sum_event(-0.5 * z.pow(2) - log_sigma - 0.5 * LOG_2PI, event_dims)


@dataclass(frozen=True)
class Likelihood:
    name: str
    # (out (B..., *shape), log_sigma, x, event_dims) -> log p(x|z) (B...,), nats
    log_prob: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
    mean: Callable[[torch.Tensor], torch.Tensor]  # out -> E[x|z], same shape
    browser_transform: str  # decode.mjs's name for `mean`
    unit_interval: bool  # data must lie in [0, 1]
    learned_sigma: bool  # the model holds a trainable log sigma
    binarize_default: str  # config.BINARIZE value used when none is asked for
    binarize_options: tuple[str, ...]  # what the Train form offers for this likelihood
    density: str  # "... log-density", as the description names it
    on_grey_levels: str  # the description when the data is not binarized
    suffix: str = ""  # appended to the description of binarized data

    def describe(self, binarize: str) -> str:
        """Which data a log-density refers to, for every binarization (shown by the CLI and the UI)."""
        if binarize == "none":
            return self.on_grey_levels
        if binarize not in BINARIZED_DATA:
            raise ValueError(f"binarize must be one of {('none', *BINARIZED_DATA)}, got {binarize!r}")
        return f"{self.density} of {BINARIZED_DATA[binarize]}{self.suffix}"

    def binarize_for(self, requested: str | None) -> str:
        """The binarization to train with: `requested`, or binarize_default when it is None.

        Binarized targets lie in [0, 1], so every likelihood accepts them when asked explicitly
        (python -m vae_core train --binarize). A form that offers only binarize_options passes None
        for any other choice."""
        return self.binarize_default if requested is None else requested


def _bernoulli(out, log_sigma, x, event_dims):
    return bernoulli_log_prob(out, x, event_dims)


def _continuous_bernoulli(out, log_sigma, x, event_dims):
    return continuous_bernoulli_log_prob(out, x, event_dims)


def _gaussian(out, log_sigma, x, event_dims):
    return gaussian_log_prob(out, log_sigma, x, event_dims)


def _sigmoid(out):
    return out.sigmoid()


def _identity(out):
    return out


_ALL_BINARIZE = ("dynamic", "fixed", "none")  # a form's order: the first is its default

REGISTRY: dict[str, Likelihood] = {
    lk.name: lk
    for lk in (
        Likelihood(
            "bernoulli",
            _bernoulli,
            _sigmoid,
            "sigmoid",
            unit_interval=True,
            learned_sigma=False,
            binarize_default="dynamic",
            binarize_options=_ALL_BINARIZE,
            density="Bernoulli log-likelihood",
            on_grey_levels="Bernoulli cross-entropy on grey levels: not a normalized log-likelihood "
            "(pytorch/examples convention)",
        ),
        Likelihood(
            "continuous-bernoulli",
            _continuous_bernoulli,
            continuous_bernoulli_mean,
            "continuous-bernoulli-mean",
            unit_interval=True,
            learned_sigma=False,
            binarize_default="none",
            binarize_options=("none",),
            density="continuous-Bernoulli log-density",
            on_grey_levels="continuous-Bernoulli log-density of grey levels in [0, 1]",
        ),
        Likelihood(
            "gaussian",
            _gaussian,
            _identity,
            "identity",
            unit_interval=False,
            learned_sigma=False,
            binarize_default="none",
            binarize_options=("none",),
            density="Gaussian log-density (fixed sigma)",
            suffix=", constants included",
            on_grey_levels="Gaussian log-density (fixed sigma) of real-valued pixels, constants included",
        ),
        Likelihood(
            "gaussian-learned",
            _gaussian,
            _identity,
            "identity",
            unit_interval=False,
            learned_sigma=True,
            binarize_default="none",
            binarize_options=("none",),
            density="Gaussian log-density (learned sigma)",
            suffix=", constants included",
            on_grey_levels="Gaussian log-density (learned sigma) of real-valued pixels, constants included",
        ),
    )
}
NAMES = tuple(REGISTRY)


def get(name: str) -> Likelihood:
    """The registry entry for `name`; ValueError naming the choices otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"likelihood must be one of {NAMES}, got {name!r}") from None
