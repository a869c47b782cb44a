"""Latent-map measurements in headless Chromium, for bench/map_scale.py and the browser tests.

A step's latency is measured in the page: a capture-phase listener stamps the input event (wheel,
or a pointer move of a drag), then waits two animation frames (the map draws in the first; the
second runs once that frame is on screen). Playwright only drives the mouse, so its round trips
are not counted. The floor (two frames of an idle page) is measured the same way on about:blank.
"""

from __future__ import annotations

import numpy as np

_PROBE = """() => {
  if (window.__mapProbe) return;
  const p = window.__mapProbe = { ms: [] };
  const stamp = (e) => {
    if (e.type === 'pointermove' && !e.buttons) return;
    const t0 = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => p.ms.push(performance.now() - t0)));
  };
  window.addEventListener('wheel', stamp, { capture: true, passive: true });
  window.addEventListener('pointermove', stamp, { capture: true, passive: true });
}"""


def write_points(path: str, means: np.ndarray, labels: np.ndarray, side: int = 8) -> str:
    """An .npz for tests/browser/map_app.py: positions = the means' top-2 PCA map, and a distinct
    side x side image per point (its index in binary, one bit per pixel) to check hover images by."""
    means = np.asarray(means, np.float32)
    c = means - means.mean(0)
    xy = (c @ np.linalg.svd(c[:5000], full_matrices=False)[2][:2].T).astype(np.float32)
    bits = (np.arange(len(means))[:, None] >> np.arange(side * side)[None]) & 1
    np.savez(
        path,
        xy=xy,
        labels=np.asarray(labels).astype(np.int64),
        means=means,
        images=bits.reshape(-1, side, side).astype(np.float32),
    )
    return path


def install_probe(page) -> None:
    page.evaluate(_PROBE)


def _steps(page, n: int, act) -> list[float]:
    install_probe(page)
    page.evaluate("() => { window.__mapProbe.ms = []; }")
    for i in range(n):
        act(i)
        page.wait_for_function("k => window.__mapProbe.ms.length >= k", arg=i + 1, timeout=120_000)
    return page.evaluate("() => window.__mapProbe.ms")


def plot_centre(page) -> tuple[float, float]:
    box = page.locator("[data-testid=vae-map-canvas]").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def zoom_steps(page, n: int) -> list[float]:
    """n wheel steps at the plot's centre, alternately in and out: ms from event to two frames."""
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    return _steps(page, n, lambda i: page.mouse.wheel(0, -120 if i % 2 == 0 else 120))


def pan_steps(page, n: int) -> list[float]:
    """A drag of n pointer moves from the plot's centre (5 px each, back and forth)."""
    x, y = plot_centre(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 10, y)  # past the 4 px dead zone: the drag has begun
    try:
        return _steps(
            page, n, lambda i: page.mouse.move(x + 10 + 5 * ((i % 20) if i % 40 < 20 else 20 - i % 20), y + 2)
        )
    finally:
        page.mouse.up()


def frame_floor_ms(page, n: int) -> dict:
    """Event -> two animation frames on an idle page (nothing drawn): the floor of every step."""
    from tests.harness.browser import percentiles

    page.set_content("<div style='width:800px;height:600px'></div>")
    page.mouse.move(400, 300)
    return percentiles(_steps(page, n, lambda i: page.mouse.wheel(0, 120)))


def map_first_paint_ms(page, url: str, n: int, timeout_ms: float = 300_000) -> float:
    """Navigation start -> the map's first frame with all n points drawn, by the page's own clock."""
    page.goto(url)
    page.wait_for_function(
        "n => window.__vaeMap && window.__vaeMap.draws >= 1 && window.__vaeMap.drawn >= n", arg=n, timeout=timeout_ms
    )
    return page.evaluate("() => window.__vaeMap.firstDrawAt")


def explorer_checkpoint(folder: str, model, train_config, images: np.ndarray, labels: np.ndarray, metrics: dict) -> str:
    """`model` saved in folder as a checkpoint whose test set is `images` (uint8 (N, H, W), written
    beside it as data.npz), with its projection cache (the means of every test point, no UMAP): the
    Explorer at scale, with VAE_CHECKPOINT_DIR = VAE_DATA_ROOTS = folder. metrics: needs kl_per_dim."""
    import dataclasses
    import os

    import torch

    from vae_core.checkpoints import save_checkpoint
    from vae_core.data import eval_targets
    from vae_core.projection_build import build_cache

    data = os.path.join(folder, "data.npz")
    np.savez(data, x_train=images[:16], y_train=labels[:16], x_test=images, y_test=labels)
    tc = dataclasses.replace(train_config, dataset=data)
    path = save_checkpoint(os.path.join(folder, "big.safetensors"), model, tc, metrics=metrics)
    x = eval_targets(torch.from_numpy(images[:, None].astype(np.float32) / 255), tc.binarize)
    build_cache(path, model, x, torch.from_numpy(labels), with_umap=False)
    return path
