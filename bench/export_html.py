"""The static export (python -m vae_core export-html): file size, build time, and time to interactive.

For the shipped checkpoint (or a tiny seeded MLP with --smoke): build the file (default settings:
all cached map points up to 2000, K = 100 per point, float16 weights), then open it from file://
in headless Chromium with every other request aborted, --loads times, each in a fresh page:
  interactive   navigation start -> map drawn, sliders live, first image decoded (the page's own
                clock, window.__vaeExport.readyMs). Target <= 1 s.
  drag fps      in-page slider `input` events at 120 Hz for 2 s (rAF-bound).
"""

from __future__ import annotations

import os
import tempfile
import time

import benchlib as bl


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--loads", type=int, default=None, help="page loads (default 5)")
    a = p.parse_args()
    load_before = bl.load_avg()
    if bl.chromium_missing(a.results, "export_html", "export time to interactive", load_before, a.smoke):
        return
    from tests.harness.browser import chromium, new_page, percentiles
    from vae_core.export_html import export_html

    loads = a.loads or (1 if a.smoke else 5)
    print(f"{bl.machine_line()}\nload {load_before}")
    with tempfile.TemporaryDirectory() as tmp:
        if a.smoke:
            import torch

            from vae_core.checkpoints import save_checkpoint
            from vae_core.config import ModelConfig, TrainConfig
            from vae_core.model import VAE

            torch.manual_seed(0)
            ckpt = save_checkpoint(
                os.path.join(tmp, "tiny.safetensors"),
                VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(8,))),
                TrainConfig(dataset="digits", epochs=1),
            )
            kw = {"points": 100, "iw_samples": 2}
        else:
            from vae_core.cache import default_checkpoint_path

            ckpt, kw = default_checkpoint_path(), {}
        out = os.path.join(tmp, "explorer.html")
        t0 = time.perf_counter()
        res = export_html(ckpt, out, **kw)
        build_s = time.perf_counter() - t0
        ready, fps = [], []
        with chromium() as browser:
            for _ in range(loads):
                page = new_page(browser)
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
                page.goto("file://" + out)
                page.wait_for_function("() => window.__vaeExport && window.__vaeExport.ready", timeout=60_000)
                ready.append(page.evaluate("window.__vaeExport.readyMs"))
                fps.append(
                    page.locator("[data-testid=export-slider-0]").evaluate("""el => new Promise(done => {
                  const h = window.__vaeExport, f0 = h.frames, t0 = performance.now();
                  const timer = setInterval(() => {
                    const t = (performance.now() - t0) / 1000;
                    if (t >= 2) { clearInterval(timer); done((h.frames - f0) / t); return; }
                    el.value = String(-3 + 6 * (t % 1)); el.dispatchEvent(new Event('input'));
                  }, 1000 / 120); })""")
                )
                page.close()
    r = percentiles(ready)
    rows = [
        [
            "file size",
            1,
            f"{res.bytes / 1e6:.2f} MB",
            "-",
            f"{res.points} points, {res.projection} map, "
            f"{'float16' if res.dtype == '<f2' else 'float32'} weights; target <= 3 MB",
        ],
        ["build (python -m vae_core export-html)", 1, f"{build_s:.1f} s", "-", "load, per-point ELBO and log p(x)"],
        [
            "open from file:// -> interactive (page clock)",
            r["n"],
            f"{r['p50']:.0f} ms",
            f"{r['max']:.0f} ms",
            "target <= 1000 ms",
        ],
        [
            "slider input at 120 Hz -> frames per second",
            len(fps),
            f"{bl.median(fps):.0f} fps",
            f"{min(fps):.0f} fps",
            "-",
        ],
    ]
    body = bl.table(["what", "n", "median", "max / worst", "note"], rows)
    body += "\n\n" + ("Tiny seeded MLP (smoke)." if a.smoke else "The shipped checkpoint, default export settings.")
    print("\n" + body)
    bl.append_results(a.results, "export_html", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
