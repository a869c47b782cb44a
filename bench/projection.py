"""First-map latency and peak memory of the latent map: PCA, UMAP (fresh process, JIT included),
and the on-disk projection cache, at 5k and 60k points.

Latents are the shipped default model's encoder means of all 5,000 mnist-5k images; 60k points
tile them 12x with small Gaussian jitter (0.05 x per-dim std). Every measurement runs in a fresh
subprocess (this script with --child), so numba JIT, imports and peak RSS are per measurement.

Rows:
  new model   PCA fit + transform (what the app can show at once), UMAP in a fresh process:
              import, first fit (JIT included), second fit in the same process.
  cached      read the projection cache from disk in a fresh process (vae_core.projection_cache.read_cache
              when that module exists; plain np.load of the same arrays always).
  hidden JIT  (a) a warm-up thread in the server process: UMAP on 64 (exact-kNN path) or 4,096
              (pynndescent path) random points at start, then the real fit; the main thread's worst
              stall while the thread compiles (GIL) is reported.
              (b) vae_core.umap_job.start_umap_process: a separate process writes the cache; the
              app shows PCA meanwhile. Time from spawn to a readable cache, for the shipped model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import benchlib as bl
import numpy as np

HERE = os.path.abspath(__file__)
# Per child process. Only a hang guard: a numba JIT on a loaded 2-core machine can take minutes,
# and a smoke run (the test suite's) must not fail because the machine is slow.
HANG_GUARD_S = 1800


def max_points() -> int:
    from vae_core.projection import MAX_POINTS

    return MAX_POINTS


# --- children (each in a fresh process) ---------------------------------------------------------
def child_pca(latents: str) -> dict:
    res = {}
    t0 = time.perf_counter()
    from vae_core.projection import fit_pca  # imports torch: already loaded in the app

    res["import_s"] = time.perf_counter() - t0
    res["rss_after_imports_mb"] = bl.rss_mb()
    bl.reset_peak_rss()
    t0 = time.perf_counter()
    z = np.load(latents)
    xy = fit_pca(z).transform(z)
    res.update(pca_s=time.perf_counter() - t0, peak_rss_mb=bl.peak_rss_mb(), shape=list(xy.shape))
    return res


def child_umap(latents: str, plain: bool, seed: int = 0) -> dict:
    z = np.load(latents).astype(np.float32)
    res = {}
    if not plain:
        t0 = time.perf_counter()
        import vae_core.projection  # noqa: F401  (numpy only; torch is imported by the functions that encode)

        res["import_projection_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import umap  # noqa: F401  (import alone costs seconds)

    res["import_s"] = time.perf_counter() - t0
    res["rss_after_imports_mb"] = bl.rss_mb()
    if plain:

        def fit(x):
            return umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(x)

        res["via"] = "umap.UMAP"
    else:
        from vae_core.umap_subsample import fit_umap as fit

        res["via"] = "vae_core.umap_subsample.fit_umap"
    bl.reset_peak_rss()
    t0 = time.perf_counter()
    fit(z)
    res["first_fit_s"] = time.perf_counter() - t0
    res["first_peak_rss_mb"] = bl.peak_rss_mb()
    bl.reset_peak_rss()
    t0 = time.perf_counter()
    fit(z)
    res["second_fit_s"] = time.perf_counter() - t0
    res["second_peak_rss_mb"] = bl.peak_rss_mb()
    return res


def child_cache_load(ckpt: str, npz: str) -> dict:
    t0 = time.perf_counter()
    with np.load(npz, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    res = {"np_load_s": time.perf_counter() - t0, "n": int(len(arrays["means"]))}
    t0 = time.perf_counter()
    from vae_core.projection_cache import read_cache  # imports torch: already loaded in the app

    res["import_s"] = time.perf_counter() - t0
    res["rss_after_imports_mb"] = bl.rss_mb()
    bl.reset_peak_rss()
    t0 = time.perf_counter()
    cache = read_cache(ckpt)
    res["read_cache_s"] = time.perf_counter() - t0
    res["read_cache_ok"] = cache is not None and cache.umap is not None
    res["peak_rss_mb"] = bl.peak_rss_mb()
    return res


def child_warm_thread(latents: str, warm_points: int) -> dict:
    """Warm-up thread started at 'app start'; the main thread ticks every 10 ms to show GIL stalls.

    UMAP takes exact nearest neighbours below 4,096 points and pynndescent from there on, so a
    warm-up on fewer points leaves pynndescent's JIT for the real fit."""
    z = np.load(latents).astype(np.float32)
    t_start = time.perf_counter()
    done = threading.Event()

    def warm():
        import umap

        x = np.random.default_rng(0).normal(size=(warm_points, z.shape[1])).astype(np.float32)
        umap.UMAP(n_neighbors=15, random_state=0).fit_transform(x)
        done.set()

    threading.Thread(target=warm, daemon=True).start()
    worst, last = 0.0, time.perf_counter()
    while not done.is_set():  # the "server" thread: how late do its 10 ms ticks come?
        time.sleep(0.01)
        now = time.perf_counter()
        worst, last = max(worst, now - last - 0.01), now
    warm_s = time.perf_counter() - t_start
    import umap

    t0 = time.perf_counter()
    umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0).fit_transform(z)
    return {
        "warmup_thread_s": warm_s,
        "worst_main_thread_stall_s": worst,
        "fit_after_warmup_s": time.perf_counter() - t0,
    }


def run_child(args: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, HERE, "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(HERE),
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"child {args} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    print(f"  {args[0]} {os.path.basename(args[1])}: {res}", flush=True)
    return res


# --- parent ---------------------------------------------------------------------------------------
def make_latents(tmp: str, sizes: list[int]) -> tuple[str, dict[int, str], object]:
    """Encoder means of the shipped checkpoint (copied into tmp) for each size; returns paths."""
    import torch

    from vae_core.cache import default_checkpoint_path
    from vae_core.checkpoints import load_checkpoint
    from vae_core.data import eval_targets, load_dataset

    src = default_checkpoint_path()
    if not os.path.exists(src):
        raise SystemExit(f"error: the shipped checkpoint {src} is missing; train it first (README: Shipped checkpoint)")
    ckpt_path = os.path.join(tmp, os.path.basename(src))
    shutil.copy(src, ckpt_path)
    ck = load_checkpoint(ckpt_path)
    tc = ck.train_config
    data = load_dataset(tc.dataset, test_fraction=tc.test_fraction)
    x = eval_targets(torch.cat([data.x_test, data.x_train]), tc.binarize)
    with torch.no_grad():
        base = ck.model.encode(x)[0].numpy()  # (5000, k) encoder means
    rng = np.random.default_rng(0)
    paths = {}
    for n in sizes:
        reps = -(-n // len(base))
        z = np.tile(base, (reps, 1))[:n]
        if n > len(base):
            z = z + rng.normal(size=z.shape).astype(np.float32) * 0.05 * base.std(0)
        paths[n] = os.path.join(tmp, f"latents_{n}.npy")
        np.save(paths[n], z.astype(np.float32))
    return ckpt_path, paths, ck


def write_cache_file(ckpt_path: str, latents: str) -> str:
    """A projection cache beside the copied checkpoint with N means and an (N, 2) embedding.
    The embedding is the PCA map (load time does not depend on the values)."""
    z = np.load(latents)
    emb = ((z - z.mean(0)) @ np.linalg.svd(z - z.mean(0), full_matrices=False)[2][:2].T).astype(np.float32)
    from vae_core.projection_cache import ProjectionCache, cache_path_for, file_sha, write_cache

    cache = ProjectionCache(file_sha(ckpt_path), np.arange(len(z)), np.full(len(z), -1), z, emb)
    write_cache(ckpt_path, cache)
    return cache_path_for(ckpt_path)


def background_process_latency(ckpt_path: str, timeout: float) -> dict:
    """vae_core.umap_job.start_umap_process on a checkpoint without a cache: spawn -> cache ready."""
    from vae_core.projection_cache import cache_path_for, read_cache
    from vae_core.umap_job import start_umap_process

    if os.path.exists(cache_path_for(ckpt_path)):
        os.unlink(cache_path_for(ckpt_path))
    t0 = time.perf_counter()
    job = start_umap_process(ckpt_path)
    while True:
        c = read_cache(ckpt_path)
        if c is not None and c.umap is not None:
            break
        if job.process.poll() is not None and job.process.returncode != 0:
            raise RuntimeError(f"start_umap_process failed: {job.log_tail(2000)}")
        if time.perf_counter() - t0 > timeout:
            job.process.kill()
            raise RuntimeError(f"background UMAP process still running after {timeout:.0f} s (hung?)")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    job.process.wait()
    return {"spawn_to_cache_s": wall, "points": int(len(c.means))}


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--sizes", default=None, help="comma list of point counts (default 5000,60000)")
    p.add_argument("--umap", action="store_true", help="with --smoke: also run the UMAP children")
    p.add_argument("--child", nargs="+", help=argparse_hidden())
    a = p.parse_args()
    if a.child:
        mode, rest = a.child[0], a.child[1:]
        out = {
            "pca": lambda: child_pca(rest[0]),
            "umap": lambda: child_umap(rest[0], plain=False),
            "umap-plain": lambda: child_umap(rest[0], plain=True),
            "cache-load": lambda: child_cache_load(rest[0], rest[1]),
            "warm-thread": lambda: child_warm_thread(rest[0], int(rest[1])),
        }[mode]()
        print(json.dumps(out))
        return
    load_before = bl.load_avg()
    sizes = [int(s) for s in (a.sizes or ("300" if a.smoke else "5000,60000")).split(",")]
    do_umap = a.umap or not a.smoke
    timeout = HANG_GUARD_S
    print(f"{bl.machine_line()}\nload {load_before}; sizes {sizes}")
    rows, mem_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt_path, lat, ck = make_latents(tmp, sizes)
        bg = None
        if do_umap and not a.smoke:  # a smoke run checks the script, not each JIT-paying process
            bg = background_process_latency(ckpt_path, timeout)
        for n in sizes:
            r = run_child(["pca", lat[n]], timeout)
            rows.append([n, "new model", "PCA fit + transform", r["pca_s"], r["process_wall_s"]])
            mem_rows.append([n, "PCA", r["rss_after_imports_mb"], r["peak_rss_mb"]])
            if do_umap:
                # the app's own fit_umap only up to its cap (vae_core.projection.MAX_POINTS)
                modes = ["umap-plain"] + (["umap"] if n <= max_points() else [])
                if a.smoke:  # one fresh process with its numba JIT (~20 s) is enough to check the script
                    modes = modes[-1:]
                for mode in modes:
                    r = run_child([mode, lat[n]], timeout)
                    if "import_projection_s" in r:
                        rows.append(
                            [n, "new model", "import vae_core.projection (numpy only)", r["import_projection_s"], "-"]
                        )
                    rows.append([n, "new model", f"{r['via']}: import umap", r["import_s"], "-"])
                    rows.append(
                        [
                            n,
                            "new model",
                            f"{r['via']}: first fit (numba JIT incl.)",
                            r["first_fit_s"],
                            r["process_wall_s"],
                        ]
                    )
                    rows.append([n, "new model", f"{r['via']}: second fit, same process", r["second_fit_s"], "-"])
                    mem_rows.append([n, f"{r['via']} first fit", r["rss_after_imports_mb"], r["first_peak_rss_mb"]])
                    mem_rows.append([n, f"{r['via']} second fit", "-", r["second_peak_rss_mb"]])
            if do_umap and n == sizes[0]:  # the warm-up story is the same at every size
                for wp in [64] if a.smoke else [64, 4096]:
                    r = run_child(["warm-thread", lat[n], str(wp)], timeout)
                    case = f"hidden JIT (thread, warm-up on {wp} points)"
                    rows.append([n, case, "warm-up thread at start", r["warmup_thread_s"], "-"])
                    rows.append(
                        [n, case, "worst stall of the main thread meanwhile (GIL)", r["worst_main_thread_stall_s"], "-"]
                    )
                    rows.append([n, case, "map fit after warm-up", r["fit_after_warmup_s"], r["process_wall_s"]])
            npz = write_cache_file(ckpt_path, lat[n])
            r = run_child(["cache-load", ckpt_path, npz], timeout)
            rows.append([n, "cached", "np.load of the cache arrays", r["np_load_s"], r["process_wall_s"]])
            rows.append(
                [n, "cached", "import vae_core.projection (numpy only; the app has it loaded)", r["import_s"], "-"]
            )
            rows.append(
                [
                    n,
                    "cached",
                    "read_cache (sha256 of checkpoint + load)" + ("" if r["read_cache_ok"] else " FAILED"),
                    r["read_cache_s"],
                    "-",
                ]
            )
            mem_rows.append([n, "cache load", r.get("rss_after_imports_mb", "-"), r["peak_rss_mb"]])
    body = bl.table(["points", "case", "step", "seconds", "fresh process wall s"], rows)
    body += (
        "\n\nMemory of the measuring process: RSS after its imports, and peak RSS (VmHWM, reset to the "
        "current RSS before the phase) during the phase:\n\n"
    )
    body += bl.table(["points", "phase", "RSS after imports MiB", "peak RSS MiB"], mem_rows)
    if bg is not None:
        body += (
            f"\n\nApp path for a new model: `vae_core.umap_job.start_umap_process` (separate process, "
            f"own JIT) for the shipped model's {bg['points']} test points: spawn -> readable cache "
            f"{bg['spawn_to_cache_s']:.1f} s; the map shows PCA meanwhile."
        )
    print("\n" + body)
    bl.append_results(a.results, "projection", body, load_before, a.smoke)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
