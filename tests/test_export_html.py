"""`python -m vae_core export-html`: the file's content, its size, float16 weights, the per-point
numbers against torch.distributions, and the CLI's errors. The page itself in Chromium:
tests/browser/test_exported_page.py."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_browser_decoder import needs_node, run_js, z_grid
from torch.distributions import Bernoulli, Normal

from vae_core.cache import default_checkpoint_path
from vae_core.checkpoints import load_checkpoint
from vae_core.data import eval_targets, load_dataset
from vae_core.export_html import explorer_data, explorer_html, export_html, point_stats
from vae_core.projection_cache import read_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = default_checkpoint_path()
needs_shipped = pytest.mark.skipif(not os.path.exists(SHIPPED), reason="the shipped checkpoint is not present")


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="vae-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def arr(b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


@pytest.fixture(scope="module")
def models(tmp_path_factory, seeded_vae):
    d = tmp_path_factory.mktemp("export")
    return {
        "mlp-z2": seeded_vae(d, "mlp-z2", "digits", latent_dim=2, hidden=(16,)),
        "conv": seeded_vae(d, "conv", "mnist-5k", latent_dim=3, arch="conv", hidden=(16,), conv_channels=(4, 8)),
    }


@needs_shipped
def test_shipped_export_is_one_small_file_that_requests_nothing(tmp_path):
    out = tmp_path / "explorer.html"
    res = export_html(SHIPPED, str(out), iw_samples=5)
    html = out.read_text(encoding="utf-8")
    assert res.bytes == out.stat().st_size <= 3_000_000
    assert "default-src 'none'" in html  # the page's CSP forbids any request
    assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!data:)", html), "a src/href that is not inline data"
    assert not re.search(r"https?://", html)
    d = page_data(html)
    cache = read_cache(SHIPPED)
    n = d["points"]["n"]
    assert res.projection == d["projection"]["name"] == ("umap" if cache.umap is not None else "pca")
    np.testing.assert_array_equal(arr(d["points"]["index"], "<i4"), cache.index[:n])
    np.testing.assert_array_equal(arr(d["points"]["means"], "<f4"), cache.means[:n].ravel())
    if cache.umap is not None:  # the same map as the app's UMAP
        np.testing.assert_array_equal(arr(d["points"]["xy"], "<f4"), cache.umap[:n].ravel())
    assert d["decoder"]["dtype"] == "<f2"


@needs_shipped
@needs_node
def test_float16_weights_of_the_shipped_model_stay_within_2_of_255():
    model = load_checkpoint(SHIPPED).model
    zs = torch.cat(
        [
            z_grid(model.cfg.latent_dim, seed=3),
            2.5 * torch.randn(20, model.cfg.latent_dim, generator=torch.Generator().manual_seed(4)),
        ]
    )
    from vae_core.browser import decoder_payload

    got = torch.tensor(run_js(decoder_payload(model, dtype="<f2"), zs)["means"], dtype=torch.float64)
    with torch.no_grad():
        want = model.decode_mean(zs).flatten(1).double()  # float32 PyTorch, as the app shows it
    assert (got - want).abs().max() <= 2 / 255


def test_point_stats_match_torch_distributions(models):
    """KL, recon, ELBO and log p(x) per point against the same draws scored by torch.distributions."""
    ck = load_checkpoint(models["mlp-z2"])
    data = load_dataset("digits")
    x = eval_targets(data.x_test[:7], "dynamic")
    k = 11
    got = point_stats(ck.model, x, iw_samples=k, seed=5)
    with torch.no_grad():
        mu, logvar = ck.model.encode(x)
        g = torch.Generator().manual_seed(5)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), generator=g)  # (K, B, 2)
        q = Normal(mu, torch.exp(0.5 * logvar))
        kl = torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
        log_px_z = Bernoulli(logits=ck.model.decode(z).flatten(2)).log_prob(x.flatten(1)).sum(-1)  # (K, B)
        log_w = log_px_z + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        want = {
            "kl": kl,
            "recon": log_px_z.mean(0),
            "elbo": log_px_z.mean(0) - kl,
            "log_px": torch.logsumexp(log_w, 0) - math.log(k),
        }
    for key, w in want.items():
        np.testing.assert_allclose(got[key], w.double().numpy(), rtol=1e-5, atol=1e-4, err_msg=key)
    assert (got["log_px"] >= got["elbo"] - 1.0).all()  # L_K sits above the 1-sample ELBO on average


@pytest.mark.parametrize("kind", ["mlp-z2", "conv"])
def test_export_of_a_model_without_projection_cache(models, tmp_path, kind):
    """No <ckpt>.proj.npz: the points are encoded here, as the app would (same order, encoder means)."""
    path = models[kind]
    out = tmp_path / f"{kind}.html"
    res = export_html(path, str(out), points=300, iw_samples=3)
    d = page_data(out.read_text(encoding="utf-8"))
    ck = load_checkpoint(path)
    assert res.points == d["points"]["n"] == 300
    assert d["projection"]["name"] == ("latent" if kind == "mlp-z2" else "pca")
    assert d["decoder"]["format"] == ("vae-mlp-decoder/1" if kind == "mlp-z2" else "vae-conv-decoder/1")
    tc = ck.train_config
    x = eval_targets(load_dataset(tc.dataset, test_fraction=tc.test_fraction).x_test, tc.binarize)
    idx = arr(d["points"]["index"], "<i4")
    with torch.no_grad():
        mu = ck.model.encode(x[torch.from_numpy(idx.astype(np.int64))])[0]
    np.testing.assert_allclose(arr(d["points"]["means"], "<f4").reshape(300, -1), mu.numpy(), atol=1e-5)
    if kind == "mlp-z2":  # the latent plane: map positions are the means themselves
        np.testing.assert_allclose(arr(d["points"]["xy"], "<f4"), arr(d["points"]["means"], "<f4"))
    for key in ("elbo", "recon", "kl", "log_px"):
        assert np.isfinite(arr(d["points"][key], "<f4")).all()
    assert len(d["sliders"]["labels"]) == ck.model_config.latent_dim


def test_user_strings_cannot_end_the_data_block(models):
    """A dataset name or title holding '</script>' stays inside the JSON (no '<' is written raw)."""
    ck = load_checkpoint(models["mlp-z2"])
    x = eval_targets(load_dataset("digits").x_test, "dynamic")
    data = explorer_data(ck, x, None, points=20, iw_samples=1)
    data["title"] = "</script><script>alert(1)</script>"
    html = explorer_html(data)
    assert html.count("</script>") == 2  # the data block's and the module's own
    assert page_data(html)["title"] == data["title"]
    assert "&lt;/script&gt;" in html.split("<title>")[1].split("</title>")[0]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vae_core", "export-html", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_cli_writes_the_file_and_reports_it(models, tmp_path):
    out = tmp_path / "e.html"
    p = _cli(models["conv"], "--out", str(out), "--points", "50", "--iw-samples", "2", "--float32")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res == {
        "out": str(out),
        "bytes": out.stat().st_size,
        "points": 50,
        "projection": "pca",
        "weights": "float32",
    }
    assert page_data(out.read_text(encoding="utf-8"))["decoder"]["dtype"] == "<f4"


def test_cli_errors_are_one_line_naming_the_problem(models, tmp_path):
    missing = str(tmp_path / "nope.safetensors")
    p = _cli(missing, "--out", str(tmp_path / "a.html"))
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "nope.safetensors" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "a.html").exists()
    p = _cli(models["mlp-z2"], "--out", str(tmp_path / "b.html"), "--points", "0")
    assert p.returncode == 1 and "--points" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    folder = tmp_path / "a-folder"
    folder.mkdir()
    p = _cli(models["mlp-z2"], "--out", str(folder))
    assert p.returncode == 1 and "a-folder is a folder" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _cli(models["mlp-z2"])
    assert p.returncode == 2 and "--out" in p.stderr
