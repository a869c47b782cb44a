"""Training replay: a small snapshot of the model after each epoch, stored beside its checkpoint.

Per snapshot epoch e (E of them, at most MAX_SNAPSHOTS, always including the last):
    xy        (E, P, 2) float16  test-set encoder means mu(x) of P fixed test points, on a 2-D map
    grid      (E, G, *input_shape) uint8  decoder means E[x|z] of G fixed prior draws z ~ N(0, I)
    recon     (E, R, *input_shape) uint8  reconstructions E[x|z = mu(x)] of R fixed test images
    kl_per_dim (E, k) float32, elbo / recon_nats / kl (E,) float32: the test-set numbers fit() logs
plus `originals` (R, *input_shape) uint8, `labels` (P,) int64 (-1: none), `index` (P,) int64 test rows,
`epochs` (E,) int64, `explained` (2,) float32, and `meta`, one JSON string (configs, source, the
checkpoint's sha256, the projection used).

The map. Every epoch is shown in the final epoch's PCA frame: epoch e's means M_e (P, k) are first
rotated onto the final means M_E by orthogonal Procrustes in the k-D latent space (Schönemann 1966),
    R_e = argmin_{R^T R = I} || (M_e - m_e) R - (M_E - m_E) ||_F,
then projected on M_E's top-2 principal axes. The likelihood and a diagonal Gaussian prior do not
fix a rotation of the latent space during training, so without R_e the map would spin from epoch to
epoch for reasons that are not learning; with it, what moves is how the points organise. No scale
is applied: early maps are small because the means start near 0.

The file is an .npz read with allow_pickle=False (vae_core.projection_cache.load_arrays: sizes
checked from the zip directory before inflating). Every problem is one ReplayError naming the file.
Importing this module loads no torch (the app's page reads replays); recording imports it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .fsutil import atomic_write_bytes
from .projection import fit_pca
from .projection_cache import BadCache, load_arrays

FORMAT = "vae_core-replay/1"
MAX_BYTES = 10 * 1024 * 1024  # one model's replay file, compressed (the budget of the feature)
RAW_BUDGET = 9 * 1024 * 1024  # arrays before compression: below MAX_BYTES whatever zlib achieves
MAX_SNAPSHOTS = 100  # a scrubber with more positions than this is not easier to read
MAX_POINTS = 2000  # map points per epoch
GRID_SIDE = 6  # a 6 x 6 grid of decoded prior draws
N_RECON = 8  # test images shown with their reconstructions
SOURCES = ("recorded", "rerun")  # recorded while this checkpoint trained / by retraining its configs
ARRAYS = {  # key -> (dtype kind, ndim)
    "epochs": ("iu", (1,)),
    "xy": ("f", (3,)),
    "labels": ("iu", (1,)),
    "index": ("iu", (1,)),
    "grid": ("u", (3, 5)),
    "recon": ("u", (3, 5)),
    "originals": ("u", (2, 4)),  # images (C, H, W) or flat (D,)
    "kl_per_dim": ("f", (2,)),
    "elbo": ("f", (1,)),
    "recon_nats": ("f", (1,)),
    "kl": ("f", (1,)),
    "explained": ("f", (1,)),
}


class ReplayError(ValueError):
    """A replay file is missing, corrupt, foreign or inconsistent: the message names the file."""


def replay_path(checkpoint_path: str) -> str:
    """<checkpoint without .safetensors>.replay.npz, beside the projection cache (.proj.npz)."""
    base = checkpoint_path.removesuffix(".safetensors")
    return base + ".replay.npz"


def with_replays(folder: str) -> list[str]:
    """Checkpoints in `folder` that have a replay file beside them (names only: nothing is read)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [
        os.path.join(folder, n)
        for n in names
        if n.endswith(".safetensors") and os.path.basename(replay_path(n)) in names
    ]


def snapshot_epochs(epochs: int, image_values: int, latent_dim: int, n_points: int) -> list[int]:
    """The epochs to snapshot: all of them, or evenly spaced ones (the last always) so that at most
    MAX_SNAPSHOTS fit in RAW_BUDGET bytes. ValueError if not even 2 snapshots fit (huge images)."""
    per = (GRID_SIDE**2 + N_RECON) * image_values + n_points * 2 * 2 + latent_dim * 4 + 16
    fit = min(MAX_SNAPSHOTS, epochs, (RAW_BUDGET - N_RECON * image_values) // per)
    if fit < min(2, epochs):
        raise ValueError(
            f"a replay of {image_values:,}-value images does not fit in {MAX_BYTES // 2**20} MB "
            f"(it needs {per:,} bytes an epoch); train without --replay"
        )
    return sorted({round(1 + i * (epochs - 1) / max(1, fit - 1)) for i in range(fit)})


def align_and_project(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, P, k) means -> ((E, P, 2) map coordinates, (2,) explained variance of the final PCA):
    each epoch rotated onto the last (see the module docstring), then the last epoch's PCA."""
    from scipy.linalg import orthogonal_procrustes

    final = means[-1].astype(np.float64)
    fm = final.mean(0)
    pca = fit_pca(final)
    out = np.empty(means.shape[:2] + (2,))
    for e, m in enumerate(means.astype(np.float64)):
        r, _ = orthogonal_procrustes(m - m.mean(0), final - fm)  # (k, k)
        out[e] = pca.transform((m - m.mean(0)) @ r + fm)
    return out, pca.explained


def _uint8(images) -> np.ndarray:
    """Decoder means (any float range) -> uint8 pixels, 0..1 mapped to 0..255."""
    return np.rint(np.clip(images.detach().cpu().float().numpy(), 0.0, 1.0) * 255).astype(np.uint8)


class ReplayRecorder:
    """Collects snapshots through fit()'s progress callback: `fit(..., progress=rec.wrap(progress))`.

    It reads the model under no_grad and draws no random numbers from torch's global generator (the
    prior draws come from its own seeded one, made once), so a run with a recorder trains exactly
    the weights a run without one does (tests/test_replay.py checks it).
    """

    def __init__(self, x_test, y_test, epochs: int, latent_dim: int, seed: int = 0):
        import torch

        n = len(x_test)
        self.index = np.arange(min(n, MAX_POINTS))  # the first P test rows
        self.labels = (
            np.full(len(self.index), -1) if y_test is None else np.asarray(y_test[: len(self.index)], np.int64)
        )
        self.x_points = x_test[: len(self.index)].float()  # (P, *input_shape)
        self.x_recon = x_test[:N_RECON].float()  # (R, *input_shape)
        g = torch.Generator().manual_seed(seed)
        self.z_grid = torch.randn(GRID_SIDE**2, latent_dim, generator=g)  # (G, k), same every epoch
        values = math.prod(x_test.shape[1:])
        self.epochs = snapshot_epochs(epochs, values, latent_dim, len(self.index))
        self.rows: list[dict] = []

    def wrap(self, progress=None):
        """A progress callback that snapshots on the chosen epochs, then calls `progress`."""

        def callback(ev) -> None:
            # fit's epoch-end report is the one "train" report that carries the model (vae_core.progress)
            if ev.phase == "train" and ev.model is not None and ev.epoch in self.epochs:
                self.snapshot(ev.epoch, ev.model, ev.history[-1])
            if progress is not None:
                progress(ev)

        return callback

    def snapshot(self, epoch: int, model, entry: dict) -> None:
        """One epoch: means of the fixed points, decoded grid and reconstructions, and fit's test numbers."""
        import torch

        dev = next(model.parameters()).device
        with torch.no_grad():
            mu = torch.cat(
                [model.encode(self.x_points[i : i + 1000].to(dev))[0] for i in range(0, len(self.x_points), 1000)]
            )
            grid = model.decode_mean(self.z_grid.to(dev))
            recon = model.decode_mean(model.encode(self.x_recon.to(dev))[0])
        self.rows.append(
            {
                "epoch": epoch,
                "mu": mu.float().cpu().numpy(),
                "grid": _uint8(grid),
                "recon": _uint8(recon),
                "kl_per_dim": entry["test_kl_per_dim"],
                "elbo": entry["test_elbo"],
                "recon_nats": entry["test_recon"],
                "kl": entry["test_kl"],
            }
        )

    def arrays(self, meta: dict) -> dict[str, np.ndarray]:
        """The file's arrays (see the module docstring); meta is stored as JSON."""
        if not self.rows:
            raise ValueError("the replay recorder holds no snapshot (did training run?)")
        if not np.isfinite(np.stack([r["mu"] for r in self.rows])).all():
            raise ValueError("the encoder means of some epoch are not finite: no replay is written")
        xy, explained = align_and_project(np.stack([r["mu"] for r in self.rows]))
        col = lambda k, dt: np.asarray([r[k] for r in self.rows], dt)
        return {
            "format": np.array(FORMAT),
            "meta": np.array(json.dumps(meta)),
            "epochs": col("epoch", np.int64),
            "xy": xy.astype(np.float16),
            "labels": self.labels.astype(np.int64),
            "index": self.index.astype(np.int64),
            "grid": np.stack([r["grid"] for r in self.rows]),
            "recon": np.stack([r["recon"] for r in self.rows]),
            "originals": _uint8(self.x_recon),
            "kl_per_dim": col("kl_per_dim", np.float32),
            "elbo": col("elbo", np.float32),
            "recon_nats": col("recon_nats", np.float32),
            "kl": col("kl", np.float32),
            "explained": np.asarray(explained, np.float32),
        }


def replay_meta(
    checkpoint_path: str,
    model_config: dict,
    train_config: dict,
    source: str = "recorded",
    final_metrics: dict | None = None,
) -> dict:
    """What a replay says about its run: configs, source, the sha256 of the checkpoint it ends at."""
    from .model_card import sha256_file

    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return {
        "source": source,
        "checkpoint_sha256": sha256_file(checkpoint_path),
        "model_config": model_config,
        "train_config": train_config,
        "final_metrics": {k: (final_metrics or {}).get(k) for k in ("elbo", "recon", "kl", "log_likelihood")},
        "projection": "each epoch's test means rotated onto the final epoch's (orthogonal Procrustes), "
        "then the final epoch's PCA",
    }


def save_replay(path: str, arrays: dict[str, np.ndarray]) -> str:
    """Compressed .npz written atomically (fsutil); ValueError if it would exceed MAX_BYTES."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    if buf.tell() > MAX_BYTES:
        raise ValueError(f"{path}: the replay would take {buf.tell():,} bytes, over the {MAX_BYTES:,} limit")
    return atomic_write_bytes(path, buf.getvalue())


@dataclass(frozen=True)
class Replay:
    path: str
    meta: dict
    epochs: np.ndarray  # (E,) 1-based epoch numbers
    xy: np.ndarray  # (E, P, 2) float32 map coordinates
    labels: np.ndarray  # (P,)
    index: np.ndarray  # (P,) test rows
    grid: np.ndarray  # (E, G, C, H, W) uint8
    recon: np.ndarray  # (E, R, C, H, W) uint8
    originals: np.ndarray  # (R, C, H, W) uint8
    kl_per_dim: np.ndarray  # (E, k)
    elbo: np.ndarray  # (E,) test ELBO, nats per example (= recon_nats - kl)
    recon_nats: np.ndarray  # (E,) E_q log p(x|z)
    kl: np.ndarray  # (E,)
    explained: np.ndarray  # (2,) variance fraction of the final epoch's PCA axes


def _check(arrays: dict) -> dict:
    """The meta dict; raises BadCache naming the first key that breaks the format."""
    missing = [k for k in ("format", "meta", *ARRAYS) if k not in arrays]
    if missing:
        raise BadCache(f"missing {', '.join(missing)}")
    fmt = arrays["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise BadCache(f"format tag {str(fmt)[:40]!r}, expected {FORMAT!r}")
    for k, (kind, ndim) in ARRAYS.items():
        v = arrays[k]
        if v.ndim not in ndim or v.dtype.kind not in kind:
            raise BadCache(
                f"'{k}' must be a {' or '.join(map(str, ndim))}-D array of dtype kind {kind!r}, "
                f"got {v.dtype} of shape {v.shape}"
            )
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise BadCache(f"'{k}' contains NaN or inf values")
    e, p = len(arrays["epochs"]), len(arrays["index"])
    want = {"xy": (e, p, 2), "labels": (p,), "kl": (e,), "elbo": (e,), "recon_nats": (e,), "explained": (2,)}
    for k, shape in want.items():
        if arrays[k].shape != shape:
            raise BadCache(f"'{k}' has shape {arrays[k].shape}, expected {shape} for {e} epochs and {p} points")
    for k in ("grid", "recon", "kl_per_dim"):
        if len(arrays[k]) != e:
            raise BadCache(f"'{k}' holds {len(arrays[k])} epochs, 'epochs' lists {e}")
    if e == 0 or p == 0 or np.any(np.diff(arrays["epochs"]) <= 0) or arrays["epochs"][0] < 1:
        raise BadCache("'epochs' must be increasing epoch numbers >= 1, with at least one")
    if arrays["recon"].shape[2:] != arrays["grid"].shape[2:] or arrays["originals"].shape != arrays["recon"].shape[1:]:
        raise BadCache("the images of 'grid', 'recon' and 'originals' differ in shape")
    meta = arrays["meta"]
    try:
        meta = json.loads(str(meta)) if meta.shape == () and meta.dtype.kind == "U" else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("source") not in SOURCES:
        raise BadCache("'meta' is not the JSON object of a replay")
    return meta


def load_replay(path: str) -> Replay:
    """Read and check a replay file. ReplayError (one line naming the file) on any problem."""
    if not os.path.isfile(path):
        raise ReplayError(f"{path}: no replay file")
    try:
        arrays = load_arrays(path, max_bytes=4 * MAX_BYTES)
        meta = _check(arrays)
    except BadCache as e:
        raise ReplayError(f"{path}: not a usable training replay ({e})") from None
    except OSError as e:
        raise ReplayError(f"{path}: cannot be read ({e.strerror or e})") from None
    f32 = lambda k: arrays[k].astype(np.float32)
    return Replay(
        path,
        meta,
        arrays["epochs"],
        f32("xy"),
        arrays["labels"],
        arrays["index"],
        arrays["grid"],
        arrays["recon"],
        arrays["originals"],
        f32("kl_per_dim"),
        f32("elbo"),
        f32("recon_nats"),
        f32("kl"),
        f32("explained"),
    )


def rerun(checkpoint_path: str, *, device: str = "cpu", progress=None) -> tuple[dict[str, np.ndarray], bool]:
    """Record a replay for an existing checkpoint by training its stored configs again (same seed).

    Returns (arrays, identical): identical when the re-run's final weights equal the checkpoint's
    bit for bit, and the replay is then marked "recorded" (it is this file's training); otherwise
    "rerun", with the re-run's own final numbers in meta, and the page says so."""
    import torch

    from .checkpoints import load_checkpoint
    from .data import eval_targets, load_dataset
    from .train import fit

    ck = load_checkpoint(checkpoint_path)
    mc, tc = ck.model_config, ck.train_config
    data = load_dataset(tc.dataset, test_fraction=tc.test_fraction)
    if ck.dataset.get("fingerprint") not in (None, data.fingerprint):
        raise ValueError(f"{checkpoint_path}: the dataset {tc.dataset!r} on disk is not the one it was trained on")
    rec = ReplayRecorder(eval_targets(data.x_test, tc.binarize), data.y_test, tc.epochs, mc.latent_dim, seed=tc.seed)
    res = fit(mc, tc, data, progress=rec.wrap(progress), device=device, final_iw_samples=0)
    mine, theirs = res.model.state_dict(), ck.model.state_dict()
    identical = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    meta = replay_meta(
        checkpoint_path,
        mc.to_dict(),
        tc.to_dict(),
        "recorded" if identical else "rerun",
        ck.metrics if identical else res.metrics,
    )
    return rec.arrays(meta), identical


def main(argv=None) -> None:
    """python -m vae_core.replay CHECKPOINT...: write each checkpoint's replay by retraining it."""
    import argparse
    import time

    ap = argparse.ArgumentParser(
        description="Record training replays of existing checkpoints by retraining "
        "their stored configs with the same seed."
    )
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    for path in args.checkpoints:
        t0 = time.perf_counter()
        arrays, identical = rerun(path, device=args.device)
        out = save_replay(replay_path(path), arrays)
        print(
            f"{out}: {os.path.getsize(out):,} bytes, {len(arrays['epochs'])} snapshots, "
            f"{'same weights as the checkpoint' if identical else 'a re-run: weights differ from the checkpoint'}"
            f", {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()


def epoch_mosaic(replay: Replay, i: int, input_shape) -> np.ndarray:
    """Snapshot i's images as one picture in [0, 1], (H, W) grey or (H, W, 3): the GRID_SIDE x
    GRID_SIDE decoded prior draws, then a white band, then the test images above their reconstructions."""
    from .images import tile, to_display

    shape = tuple(input_shape)
    grid = to_display(replay.grid[i].astype(np.float32) / 255, shape)  # (G, H, W[, 3])
    pairs = to_display(np.concatenate([replay.originals, replay.recon[i]]).astype(np.float32) / 255, shape)
    side, r = GRID_SIDE, len(replay.originals)
    top = tile(grid.reshape(side, side, *grid.shape[1:]))
    bottom = tile(pairs.reshape(2, r, *pairs.shape[1:]))
    width = max(top.shape[1], bottom.shape[1])
    pad = lambda a: np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=1.0)
    band = np.ones((max(2, top.shape[0] // 12), width, *top.shape[2:]), np.float32)
    return np.concatenate([pad(top), band, pad(bottom)])
