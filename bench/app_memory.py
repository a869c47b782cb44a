"""Peak RSS of the streamlit server with a 60k-point test set open in the explorer (target <= 2 GB).

The data: an .npz dataset whose test split is 60,000 images (mnist-5k's 5,000 tiled 12x with
+-2/255 pixel jitter, uint8), and a checkpoint of the shipped model's weights that names it. The
server runs `streamlit run app/main.py` with that checkpoint alone in its cache dir; a headless
Chromium opens the explorer, moves the "Points on the map" slider to its end (the largest map
the app offers) and waits for the map. RSS of the server process (/proc/PID/status VmRSS, sampled
every 0.2 s, and VmHWM at the end) is reported per phase; a second browser session is opened too.
The UMAP child process is not started (the map stays on PCA); projection.py measures UMAP memory.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

import benchlib as bl
import numpy as np
from browser_latency import map_points, wait_for_map


def make_60k(tmp: str, n_test: int) -> str:
    """Writes the .npz dataset and a checkpoint naming it; returns the checkpoint cache dir."""
    from vae_core.cache import default_checkpoint_path
    from vae_core.checkpoints import load_checkpoint, save_checkpoint
    from vae_core.data import load_dataset

    data = load_dataset("mnist-5k")
    x = np.concatenate([data.x_train.numpy(), data.x_test.numpy()])[:, 0]  # (5000, 28, 28) in [0, 1]
    y = np.concatenate([data.y_train.numpy(), data.y_test.numpy()])
    reps = -(-n_test // len(x))
    rng = np.random.default_rng(0)
    xt = np.tile(np.round(x * 255), (reps, 1, 1))[:n_test] + rng.integers(-2, 3, size=(n_test, 28, 28))
    npz = os.path.join(tmp, f"mnist-tiled-{n_test}.npz")
    np.savez(
        npz,
        x_train=np.round(data.x_train.numpy()[:, 0] * 255).astype(np.uint8),
        y_train=data.y_train.numpy(),
        x_test=np.clip(xt, 0, 255).astype(np.uint8),
        y_test=np.tile(y, reps)[:n_test],
    )
    ck = load_checkpoint(default_checkpoint_path())
    d = os.path.join(tmp, "ckpts")
    os.makedirs(d, exist_ok=True)
    save_checkpoint(
        os.path.join(d, f"tiled{n_test}.safetensors"),
        ck.model,
        ck.train_config.replace(dataset=npz),
        history=ck.history,
        dataset={"name": npz},
        metrics=ck.metrics,
    )
    return d


class RSSSampler:
    """Samples VmRSS of a pid every `every` seconds in a thread; .peak_mb over the samples."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.samples = str(pid), every, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(bl.rss_mb(self.pid))
            except (OSError, KeyError):
                return
            time.sleep(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def mark(self) -> int:
        return len(self.samples)

    def peak_since(self, mark: int) -> float:
        return max(self.samples[mark:] or [float("nan")])


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--n-test", type=int, default=None, help="test images (default 60000)")
    a = p.parse_args()
    load_before = bl.load_avg()
    from tests.harness.browser import StreamlitServer, chromium, new_page

    if bl.chromium_missing(a.results, "app_memory", "app memory", load_before, a.smoke):
        return
    n_test = a.n_test or (2_000 if a.smoke else 60_000)
    print(f"{bl.machine_line()}\nload {load_before}; test set {n_test}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = make_60k(tmp, n_test)
        with (
            StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": d, "VAE_DATA_ROOTS": tmp}, timeout=600) as s,
            RSSSampler(s.proc.pid) as rss,
            chromium() as browser,
        ):
            rows.append(
                [
                    "server started (health answered)",
                    "-",
                    rss.samples[-1] if rss.samples else bl.rss_mb(str(s.proc.pid)),
                ]
            )
            page = new_page(browser)
            page.set_default_timeout(300_000)
            m = rss.mark()
            t0 = time.perf_counter()
            page.goto(s.url + "/")
            wait_for_map(page)
            rows.append(
                [
                    f"explorer open, default map ({map_points(page):,} points)",
                    f"{time.perf_counter() - t0:.1f}",
                    rss.peak_since(m),
                ]
            )
            cap = page.locator("[data-testid=stSlider]").first  # "Points on the map"
            m = rss.mark()
            t0 = time.perf_counter()
            cap.locator("input[type=range]").focus()
            page.keyboard.press("End")
            before = map_points(page)
            try:
                page.wait_for_function(
                    "b => window.__vaeMap.drawn > b", arg=before, timeout=5_000 if a.smoke else 120_000
                )
            except Exception:  # the default was already the largest map
                pass
            page.wait_for_timeout(2000)
            n_map = map_points(page)
            rows.append(
                [
                    f"map at its largest ({n_map:,} of {n_test:,} test points)",
                    f"{time.perf_counter() - t0:.1f}",
                    rss.peak_since(m),
                ]
            )
            page2 = new_page(browser)
            m = rss.mark()
            t0 = time.perf_counter()
            page2.goto(s.url + "/")
            wait_for_map(page2)
            rows.append(["second browser session open", f"{time.perf_counter() - t0:.1f}", rss.peak_since(m)])
            page2.close()
            page.close()
            hwm = bl._status_kb("VmHWM", str(s.proc.pid)) / 1024
    rows.append(["server peak RSS (VmHWM) over the whole run (target <= 2048 MiB)", "-", hwm])
    body = bl.table(["phase", "seconds", "peak RSS MiB of the server"], rows)
    cap_note = ""
    if n_map < n_test:
        cap_note = (
            f"\n\nThe app caps the map at {n_map:,} points (vae_core.projection.MAX_POINTS / the "
            f"explorer's point slider): a {n_test:,}-image test set is shown as a {n_map:,}-point "
            "subset, so a full 60k-point map is never built; the server still holds the whole test "
            "set (float32 images and their binarized targets)."
        )
    if not a.smoke:
        body += f"\n\nTarget: peak RSS <= 2048 MiB: {hwm:.0f} MiB {'PASS' if hwm <= 2048 else 'FAIL'}."
    body += cap_note
    print("\n" + body)
    bl.append_results(a.results, "app_memory", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
