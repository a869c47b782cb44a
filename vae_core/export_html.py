"""A serverless explorer in one file: `python -m vae_core export-html CHECKPOINT --out explorer.html`.

The file holds everything the page needs and fetches nothing (its Content-Security-Policy forbids
any request): the decoder (vae_core.browser payload, float16 weights by default), the map points from
the projection cache (or encoded here when there is none), each point's test image (one PNG sprite),
its encoder mean and its stored ELBO terms, and the JS of vae_core/js (decode.mjs, project.mjs,
explorer.js). Any number of students can open it from a static host, a course page or a USB stick.

Per-point numbers, in nats, with one set of K importance samples z_k ~ q(z|x) per test point:
    KL     = KL(q(z|x) || p(z)) in closed form (vae_core.losses.kl_diag_gaussian)
    recon  = (1/K) sum_k log p(x|z_k)
    ELBO   = recon - KL
    log p(x) ~ L_K = log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)   (Burda et al. 2016)
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .constants import SLIDER_RANGE, SLIDER_STEP
from .js import js_source

if TYPE_CHECKING:
    from .model import VAE

DEFAULT_POINTS = 2000  # the Explorer page's default map cap
DEFAULT_IW_SAMPLES = 100  # K per point: the checkpoint's own test log p(x) uses 100 too
TRAVERSAL_ROWS = 8  # dims in the traversal grid (highest KL first)
TRAVERSAL_STEPS = 9  # values per row, evenly spaced over the sliders' range


@dataclass(frozen=True)
class ExportResult:
    path: str
    bytes: int
    points: int
    projection: str  # "latent" | "pca" | "umap"
    dtype: str


def _b64(a, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def point_stats(model: VAE, x, iw_samples: int = DEFAULT_IW_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Per test point (N,) float64 arrays elbo, recon, kl, log_px (see the module docstring)."""
    import torch

    from .estimators import importance_terms, per_pass
    from .losses import kl_diag_gaussian

    if iw_samples < 1:
        raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
    g = torch.Generator().manual_seed(seed)
    bs = per_pass(model, iw_samples)  # examples per chunk: K * B * D decoder outputs within the budget
    out: dict[str, list] = {"elbo": [], "recon": [], "kl": [], "log_px": []}
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = x[i : i + bs]
            log_px, recon = importance_terms(model, xb, iw_samples, g)
            kl = kl_diag_gaussian(*model.encode(xb)).sum(-1)
            out["recon"].append(recon)
            out["kl"].append(kl)
            out["elbo"].append(recon - kl)
            out["log_px"].append(log_px)
    return {k: torch.cat(v).double().numpy() for k, v in out.items()}


def _sprite(images: np.ndarray) -> dict:
    """Display images (N, H, W[, 3]) in [0, 1] -> one PNG sheet, `cols` per row, 1 px gaps."""
    from .images import sprite_sheet

    png, cols = sprite_sheet(images)
    return {"png": base64.b64encode(png).decode("ascii"), "cols": cols, "h": images.shape[1], "w": images.shape[2]}


def _projection(means_all: np.ndarray, umap_all: np.ndarray | None, n: int) -> tuple[str, dict, np.ndarray, list]:
    """(name, project.mjs spec, map xy of the first n points, axis titles), as the Explorer chooses:
    the latent plane for k <= 2, else UMAP when cached, else PCA of all cached means. The kNN
    transform that places the star on a UMAP map uses the exported points only."""
    from .projection import LatentPlane, fit_pca

    k = means_all.shape[1]
    if k <= 2:
        xy = LatentPlane(k).transform(means_all[:n])
        return "latent", {"kind": "plane", "k": k}, xy, ["z1", "z2" if k == 2 else "(k = 1)"]
    if umap_all is not None:
        xy = np.asarray(umap_all[:n], np.float64)
        spec = {"kind": "knn", "k": k, "nNeighbors": 15}  # means and xy are filled in by the page
        return "umap", spec, xy, ["UMAP 1", "UMAP 2"]
    pca = fit_pca(means_all)
    ev = pca.explained
    spec = {"kind": "pca", "k": k, "center": pca.center.tolist(), "components": pca.components.ravel().tolist()}
    return "pca", spec, pca.transform(means_all[:n]), [f"PC1 ({ev[0]:.0%} of variance)", f"PC2 ({ev[1]:.0%})"]


def _title(ckpt) -> str:
    mc, tc = ckpt.model_config, ckpt.train_config
    hidden = "-".join(map(str, mc.hidden)) or "linear"
    return (
        f"{tc.dataset} · {mc.arch.upper()} {hidden} · latent dim {mc.latent_dim} · {mc.likelihood} · "
        f"{tc.objective} β={tc.beta:g}"
    )


def explorer_data(
    ckpt,
    x_test,
    y_test=None,
    *,
    points: int = DEFAULT_POINTS,
    iw_samples: int = DEFAULT_IW_SAMPLES,
    dtype: str = "<f2",
    seed: int = 0,
) -> dict:
    """Everything the page shows, as JSON-ready data. x_test: the test targets the model's numbers
    refer to (vae_core.data.eval_targets), y_test: labels or None."""
    import torch

    from .browser import decoder_payload
    from .images import to_display
    from .latent import collapsed_dims, mean_variance
    from .projection import encode_means, point_order
    from .projection_cache import read_cache

    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    model, k = ckpt.model, ckpt.model_config.latent_dim
    cached = read_cache(ckpt.path) if ckpt.path else None
    if cached is not None and cached.means.shape[1] == k and int(cached.index.max()) < len(x_test):
        index, means_all, umap_all = cached.index, cached.means, cached.umap
        labels = cached.labels
    else:  # no (valid) projection cache: the same points the app would encode
        index = point_order(len(x_test))
        means_all, umap_all = encode_means(model, x_test[torch.from_numpy(index)]), None
        labels = y_test[torch.from_numpy(index)].numpy() if y_test is not None else np.full(len(index), -1)
    n = min(points, len(index))
    name, spec, xy, axes = _projection(means_all, umap_all, n)
    idx = index[:n]
    x = x_test[torch.from_numpy(np.ascontiguousarray(idx))]
    stats = point_stats(model, x, iw_samples, seed)
    kl_dim = ckpt.metrics.get("kl_per_dim")
    if not kl_dim or len(kl_dim) != k:
        from .losses import kl_diag_gaussian

        with torch.no_grad():
            kl_dim = kl_diag_gaussian(*model.encode(x)).mean(0).tolist()
    collapsed = collapsed_dims(kl_dim, mean_variance(torch.from_numpy(np.asarray(means_all, np.float32))))
    order = [int(d) for d in np.argsort(-np.asarray(kl_dim), kind="stable")[:TRAVERSAL_ROWS]]
    metrics = {key: ckpt.metrics.get(key) for key in ("elbo", "recon", "kl", "log_likelihood", "iw_samples")}
    return {
        "title": _title(ckpt),
        "checkpoint": os.path.basename(ckpt.path or ""),
        "metrics": metrics,
        "decoder": decoder_payload(model, dtype=dtype),
        "projection": {"name": name, "spec": spec, "axes": axes},
        "points": {
            "n": n,
            "k": k,
            "xy": _b64(xy, "<f4"),
            "means": _b64(means_all[:n], "<f4"),
            "index": _b64(idx, "<i4"),
            "labels": _b64(labels[:n], "<i4"),
            **{key: _b64(v, "<f4") for key, v in stats.items()},
        },
        "iw_samples": iw_samples,
        "n_test": len(x_test),
        "sprite": _sprite(to_display(x, ckpt.model_config.input_shape)),
        "sliders": {
            "range": SLIDER_RANGE,
            "step": SLIDER_STEP,
            "labels": [
                f"z{d + 1} · KL {v:.2f}" + (" · collapsed" if c else "")
                for d, (v, c) in enumerate(zip(kl_dim, collapsed))
            ],
            "collapsed": collapsed,
        },
        "traversal": {"dims": order, "steps": TRAVERSAL_STEPS},
    }


def _script_json(data: dict) -> str:
    """JSON safe inside <script>: no '<' at all, so no '</script>' or '<!--' can end the block."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _module(name: str) -> str:
    """An .mjs file inlined: its `export` keywords dropped (one inline module holds all three files)."""
    return "\n".join(line.removeprefix("export ") for line in js_source(name).splitlines())


def explorer_html(data: dict) -> str:
    """The page: vae_core/js/explorer.html with the data and the JS put in place."""
    js = "\n".join([_module("decode.mjs"), _module("project.mjs"), js_source("explorer.js")])
    if "</script" in js.lower():
        raise ValueError("the inlined JS contains '</script'")
    page = js_source("explorer.html")
    for key, value in (("TITLE", html.escape(data["title"])), ("DATA", _script_json(data)), ("SCRIPT", js)):
        page = page.replace("{{" + key + "}}", value, 1)
    return page


def export_html(
    checkpoint_path: str,
    out_path: str,
    *,
    points: int = DEFAULT_POINTS,
    iw_samples: int = DEFAULT_IW_SAMPLES,
    dtype: str = "<f2",
    seed: int = 0,
    data_root: str | None = None,
) -> ExportResult:
    """Write the standalone explorer of a checkpoint to out_path (atomically); see the module docstring."""
    from .checkpoints import load_checkpoint
    from .data import eval_targets, load_dataset
    from .fsutil import atomic_write_bytes

    ck = load_checkpoint(checkpoint_path)
    tc = ck.train_config
    ds = load_dataset(tc.dataset, data_root=data_root, test_fraction=tc.test_fraction)
    data = explorer_data(
        ck,
        eval_targets(ds.x_test, tc.binarize),
        ds.y_test,
        points=points,
        iw_samples=iw_samples,
        dtype=dtype,
        seed=seed,
    )
    raw = explorer_html(data).encode("utf-8")
    atomic_write_bytes(out_path, raw)
    return ExportResult(out_path, len(raw), data["points"]["n"], data["projection"]["name"], dtype)


# --- command line (python -m vae_core export-html) ----------------------------------------------


def add_arguments(p) -> None:
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.add_argument("--points", type=int, default=DEFAULT_POINTS, help="test points on the map (with hover images)")
    p.add_argument(
        "--iw-samples",
        type=int,
        default=DEFAULT_IW_SAMPLES,
        help="K importance samples per point for its log p(x), recon and ELBO",
    )
    p.add_argument(
        "--float32",
        action="store_true",
        help="store the decoder weights as float32 (default float16: half the size, pixels within 2/255)",
    )
    p.add_argument("--data-root", default=None, help="folder holding torchvision datasets")
    p.add_argument("--seed", type=int, default=0)


def run(a) -> int:
    if a.points < 1 or a.iw_samples < 1:
        raise ValueError(f"--points and --iw-samples must be >= 1, got {a.points} and {a.iw_samples}")
    if os.path.isdir(a.out):
        raise ValueError(f"--out {a.out} is a folder; give a file name such as explorer.html")
    res = export_html(
        a.checkpoint,
        a.out,
        points=a.points,
        iw_samples=a.iw_samples,
        dtype="<f4" if a.float32 else "<f2",
        seed=a.seed,
        data_root=a.data_root,
    )
    print(
        json.dumps(
            {
                "out": res.path,
                "bytes": res.bytes,
                "points": res.points,
                "projection": res.projection,
                "weights": "float32" if res.dtype == "<f4" else "float16",
            }
        )
    )
    return 0
