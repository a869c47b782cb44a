"""A linear-Gaussian VAE whose log p(x), posterior and ELBO gap are known in closed form.

    p(z) = N(0, I_k),   p(x|z) = N(W z + b, s^2 I_D)
    p(x)   = N(x; b, W W^T + s^2 I)
    p(z|x) = N(M^-1 W^T (x - b), s^2 M^-1),   M = W^T W + s^2 I

It is wrapped as a real `VAE` (linear encoder and decoder, fixed-sigma Gaussian likelihood), so the
lab estimators run on it unchanged and can be checked against the closed forms. When W has
orthogonal columns, M is diagonal and a diagonal q(z|x) can equal p(z|x) exactly (gap 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..model import VAE


@dataclass(frozen=True)
class LinearGaussian:
    W: torch.Tensor  # (D, k) decoder weight
    b: torch.Tensor  # (D,) decoder bias
    s: float  # observation noise std

    @classmethod
    def random(
        cls, d: int, k: int, s: float = 0.5, seed: int = 0, orthogonal: bool = True, dtype=torch.float64
    ) -> LinearGaussian:
        """Random W with column norms in [0.5, 2]; orthogonal columns make p(z|x) diagonal."""
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(d, k, generator=g, dtype=dtype)
        if orthogonal:
            a = torch.linalg.qr(a).Q * torch.linspace(0.5, 2.0, k, dtype=dtype)
        return cls(a, 0.3 * torch.randn(d, generator=g, dtype=dtype), float(s))

    @property
    def d(self) -> int:
        return self.W.shape[0]

    @property
    def k(self) -> int:
        return self.W.shape[1]

    def precision_m(self) -> torch.Tensor:
        """M = W^T W + s^2 I, (k, k); the posterior covariance is s^2 M^-1."""
        return self.W.T @ self.W + self.s**2 * torch.eye(self.k, dtype=self.W.dtype)

    def marginal(self) -> torch.distributions.MultivariateNormal:
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.d, dtype=self.W.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x), (B, D) -> (B,)."""
        return self.marginal().log_prob(x.to(self.W.dtype))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z|x): mean (B, k) = M^-1 W^T (x - b), covariance (k, k) = s^2 M^-1 (same for every x)."""
        m = self.precision_m()
        mean = torch.linalg.solve(m, self.W.T @ (x.to(self.W.dtype) - self.b).T).T
        return mean, self.s**2 * torch.linalg.inv(m)

    def kl_q_posterior(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, diag e^logvar) || p(z|x)) per example, (B,); equals log p(x) - ELBO.

        KL(N0 || N1) = 0.5 [tr(S1^-1 S0) + (m1-m0)^T S1^-1 (m1-m0) - k + log det S1 - log det S0]
        """
        mean, cov = self.posterior(x)
        mu, logvar = mu.to(cov.dtype), logvar.to(cov.dtype)
        prec = torch.linalg.inv(cov)
        diff = mean - mu  # (B, k)
        trace = (torch.diagonal(prec) * logvar.exp()).sum(-1)  # tr(S1^-1 diag(var))
        maha = ((diff @ prec) * diff).sum(-1)
        return 0.5 * (trace + maha - self.k + torch.logdet(cov) - logvar.sum(-1))

    def expected_log_px_given_z(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """E_{N(z; mu, diag e^logvar)} log N(x; W z + b, s^2 I) in closed form, (B,); differentiable.

        = -D/2 log(2 pi s^2) - (|x - W mu - b|^2 + sum_j (W^T W)_jj var_j) / (2 s^2)
        """
        w = self.W.to(mu.dtype)
        resid = x.to(mu.dtype) - mu @ w.T - self.b.to(mu.dtype)
        spread = (w.pow(2).sum(0) * logvar.exp()).sum(-1)
        return -0.5 * self.d * math.log(2 * math.pi * self.s**2) - (resid.pow(2).sum(-1) + spread) / (2 * self.s**2)

    def sample_x(self, n: int, seed: int = 0) -> torch.Tensor:
        """x ~ p(x), (n, D)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.k, generator=g, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.s * torch.randn(n, self.d, generator=g, dtype=self.W.dtype)

    def vae(self, mean_scale: float = 1.0, logvar_shift: float = 0.0) -> VAE:
        """The model as a VAE. Its encoder outputs mu = mean_scale * E[z|x] and
        logvar = log diag(s^2 M^-1) + logvar_shift; with (1, 0) and orthogonal W, q(z|x) = p(z|x).
        The VAE has the dtype of W (float64 by default, for tight tests)."""
        d, k = self.d, self.k
        cfg = ModelConfig(input_shape=(d,), latent_dim=k, hidden=(), likelihood="gaussian", sigma=self.s)
        model = VAE(cfg).to(self.W.dtype)
        m_inv = torch.linalg.inv(self.precision_m())
        a = mean_scale * m_inv @ self.W.T  # (k, D): mu = a (x - b)
        logvar = torch.log(torch.diagonal(self.s**2 * m_inv)) + logvar_shift
        with torch.no_grad():
            enc, dec = model.encoder[0], model.decoder[0]  # Linear(D, 2k), Linear(k, D)
            enc.weight.copy_(torch.cat([a, torch.zeros(k, d, dtype=a.dtype)]))
            enc.bias.copy_(torch.cat([-a @ self.b, logvar]))
            dec.weight.copy_(self.W)
            dec.bias.copy_(self.b)
        return model.eval()

    def is_exact(self, mean_scale: float = 1.0, logvar_shift: float = 0.0, tol: float = 1e-9) -> bool:
        """Whether vae(mean_scale, logvar_shift) has q(z|x) = p(z|x) (needs diagonal M)."""
        m = self.precision_m()
        off = (m - torch.diag(torch.diagonal(m))).abs().max()
        return bool(off < tol and mean_scale == 1.0 and logvar_shift == 0.0)
