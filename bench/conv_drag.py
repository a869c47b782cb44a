"""Conv decoder in the browser: slider drag fps in the Explorer, and the server's CPU meanwhile.

A seeded, untrained conv VAE of the default size (28x28, conv channels 32-64, hidden 400, k = 16;
decode cost does not depend on training) is opened in the Explorer of `streamlit run app/main.py` in
headless Chromium. Measured:
  drag fps      mouse moves paced at 120 Hz without waiting for frames, sweeps of 2 s; fps = frames
                painted / time (tests.harness.browser.drag_fps). Target >= 30 fps.
  synthetic fps in-page `input` events at 120 Hz (bounded by requestAnimationFrame, not the driver).
  decode ms     the component's own per-frame decode time (decode.mjs).
  server CPU    CPU-seconds the streamlit process used during the drags (utime + stime from
                /proc/<pid>/stat): ~0 means the server is idle while a student drags.
"""

from __future__ import annotations

import os
import tempfile

import benchlib as bl


def conv_cache_dir(tmp: str, smoke: bool) -> str:
    import torch

    from vae_core.checkpoints import save_checkpoint
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.model import VAE

    d = os.path.join(tmp, "conv")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    cfg = (
        ModelConfig(input_shape=(1, 28, 28), latent_dim=4, arch="conv", hidden=(32,), conv_channels=(4, 8))
        if smoke
        else ModelConfig(input_shape=(1, 28, 28), latent_dim=16, arch="conv", hidden=(400,), conv_channels=(32, 64))
    )
    model = VAE(cfg)
    with torch.no_grad():
        for prm in model.decoder.parameters():
            prm.mul_(2.0)  # visible contrast: frames differ between slider steps
    save_checkpoint(
        os.path.join(d, "conv-untrained.safetensors"),
        model,
        TrainConfig(dataset="mnist-5k", epochs=1, binarize="dynamic"),
    )
    return d


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--sweeps", type=int, default=None, help="2 s drag sweeps (default 5)")
    a = p.parse_args()
    load_before = bl.load_avg()
    if bl.chromium_missing(a.results, "conv_drag", "conv drag fps", load_before, a.smoke):
        return
    from tests.harness.browser import (
        StreamlitServer,
        chromium,
        drag_fps,
        hook,
        new_page,
        percentiles,
        synthetic_drag_fps,
        wait_for_frames,
    )

    sweeps = a.sweeps or (1 if a.smoke else 5)
    print(f"{bl.machine_line()}\nload {load_before}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        models = [("conv", conv_cache_dir(tmp, a.smoke))]
        if not a.smoke:  # the same measurement for the shipped MLP: what this machine allows at all
            models.append(("shipped MLP (reference)", bl.shipped_cache_dir(tmp)))
        for name, d in models:
            with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": d}, timeout=600) as s:
                page = new_page(browser)
                page.goto(s.url + "/")
                wait_for_frames(page, 1, 300_000)
                page.wait_for_timeout(2000)  # let the page's own reruns settle
                h = hook(page)
                assert h["mode"] == "browser", f"{name}: not decoding in the browser: {h.get('mode')}"
                cpu0 = bl.cpu_seconds(s.proc.pid)
                real = [drag_fps(page, i % 4, seconds=2.0)["fps"] for i in range(sweeps)]
                cpu_drag = bl.cpu_seconds(s.proc.pid) - cpu0
                synth = [synthetic_drag_fps(page, (i + 1) % 4, seconds=2.0)["fps"] for i in range(sweeps)]
                page.wait_for_timeout(1500)  # the releases' reruns (z to Python) finish
                cpu_total = bl.cpu_seconds(s.proc.pid) - cpu0
                dec = percentiles(hook(page)["decodeMs"])
                page.close()
            rows += [
                [
                    f"{name}: drag at 120 Hz mouse moves, frames painted per second",
                    len(real),
                    f"{bl.median(real):.0f} fps",
                    f"{min(real):.0f} fps (worst sweep)",
                    "target >= 30 fps",
                ],
                [
                    f"{name}: in-page input events at 120 Hz (rAF-bound)",
                    len(synth),
                    f"{bl.median(synth):.0f} fps",
                    f"{min(synth):.0f} fps",
                    "-",
                ],
                [f"{name}: in-browser decode per frame (component hook), ms", dec["n"], dec["p50"], dec["p95"], "-"],
                [
                    f"{name}: server CPU-seconds while dragging (mouse down)",
                    1,
                    f"{cpu_drag:.2f} s",
                    "-",
                    f"{2.0 * sweeps:.0f} s of dragging",
                ],
                [f"{name}:   ... including the releases' reruns", 1, f"{cpu_total:.2f} s", "-", f"{sweeps} releases"],
            ]
    body = bl.table(["what", "n", "median / p50", "worst / p95", "note"], rows)
    body += (
        "\n\nModel: "
        + ("tiny smoke conv" if a.smoke else "conv 28x28, channels 32-64, hidden 400, k = 16 (seeded, untrained)")
        + "; the Explorer page of app/main.py, in-browser decoding (decode.mjs)."
    )
    print("\n" + body)
    bl.append_results(a.results, "conv_drag", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
