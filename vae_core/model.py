"""The Gaussian VAE: q(z|x) = N(mu, diag exp(logvar)), p(z) = N(0, I), p(x|z) per ModelConfig.

Method names follow Kingma & Welling (2014): encode, reparameterize, decode.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from . import likelihoods as lk
from .config import ModelConfig


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, 2*latent); two stride-2 convs then an MLP head. H, W in {28, 32}."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, h, _ = cfg.input_shape
        c1, c2 = cfg.conv_channels
        self.convs = nn.Sequential(
            nn.Conv2d(c, c1, 4, 2, 1),
            nn.ReLU(),  # -> (c1, h/2, h/2)
            nn.Conv2d(c1, c2, 4, 2, 1),
            nn.ReLU(),  # -> (c2, h/4, h/4)
            nn.Flatten(),
        )
        self.head = _mlp([c2 * (h // 4) ** 2, *cfg.hidden, 2 * cfg.latent_dim])

    def forward(self, x):
        return self.head(self.convs(x))


class ConvDecoder(nn.Module):
    """(B, latent) -> (B, C, H, W) decoder parameters (logits or mean)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, h, _ = cfg.input_shape
        c1, c2 = cfg.conv_channels
        self.shape = (c2, h // 4, h // 4)
        n = c2 * (h // 4) ** 2
        self.fc = nn.Sequential(_mlp([cfg.latent_dim, *cfg.hidden, n]), nn.ReLU())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1),
            nn.ReLU(),  # -> (c1, h/2, h/2)
            nn.ConvTranspose2d(c1, c, 4, 2, 1),
        )  # -> (c, h, h)

    def forward(self, z):
        return self.deconvs(self.fc(z).view(-1, *self.shape))


@dataclass
class VAEOutput:
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (L, B, D) reparameterized samples
    out: torch.Tensor  # (L, B, *input_shape) decoder parameters


class VAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.input_dim, cfg.latent_dim
        if cfg.arch == "mlp":
            self.encoder = _mlp([d, *cfg.hidden, 2 * k])  # (B, D_in) -> (B, 2k)
            self.decoder = _mlp([k, *cfg.hidden, d])  # (B, k) -> (B, D_in)
        else:
            self.encoder = ConvEncoder(cfg)
            self.decoder = ConvDecoder(cfg)
        if lk.get(cfg.likelihood).learned_sigma:
            n = 1 if cfg.sigma_mode == "shared" else d
            self.log_sigma = nn.Parameter(torch.zeros(n))
        else:
            self.register_buffer("log_sigma", torch.full((1,), math.log(cfg.sigma)), persistent=False)

    @property
    def likelihood(self) -> lk.Likelihood:
        """p(x|z)'s registry entry (vae_core.likelihoods): log-density, mean, data range."""
        return lk.get(self.cfg.likelihood)

    @property
    def event_dims(self) -> int:
        return len(self.cfg.input_shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, *input_shape) -> mu, logvar, each (B, k)."""
        h = self.encoder(x.flatten(1) if self.cfg.arch == "mlp" else x)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu, logvar, n_samples: int = 1, generator=None, eps=None) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): (B, k) -> (L, B, k). Gradients flow to mu, logvar.

        eps (L, B, k), when given, is used instead of a fresh draw (training draws the noise of the
        whole global batch and hands each rank its slice: see vae_core.batches)."""
        if eps is None:
            eps = torch.randn((n_samples, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., k) -> decoder parameters (..., *input_shape): logits or Gaussian mean."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))
        return out.reshape(*lead, *self.cfg.input_shape)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] for display, (..., *input_shape)."""
        return self.likelihood.mean(self.decode(z))

    def sigma_tensor(self) -> torch.Tensor:
        """log sigma broadcastable to one example, (*input_shape) or (1,)."""
        ls = self.log_sigma
        return ls.view(self.cfg.input_shape) if ls.numel() > 1 else ls

    def log_px_given_z(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per example; out (..., *shape), x broadcastable -> (...)."""
        return self.likelihood.log_prob(out, self.sigma_tensor(), x, self.event_dims)

    def forward(self, x: torch.Tensor, n_samples: int = 1, eps=None) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, n_samples, eps=eps)
        return VAEOutput(mu, logvar, z, self.decode(z))
