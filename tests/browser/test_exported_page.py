"""The exported explorer (python -m vae_core export-html) opened from file:// in headless Chromium with
every non-file request aborted: map drawn, hover shows the test image, a slider drag changes the
picture and its pixels are PyTorch's decode, click-to-load, buttons, traversal. For the shipped
model, an MLP with latent dim 2 and a conv model."""

from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pytest
import torch

from vae_core.cache import default_checkpoint_path
from vae_core.checkpoints import load_checkpoint
from vae_core.data import eval_targets, load_dataset
from vae_core.export_html import export_html
from vae_core.images import to_display

pytestmark = pytest.mark.browser
F16_BYTES = 3.0  # float16 weights: pixel values within 2/255 of float32, plus 8-bit rounding on each side


@pytest.fixture(scope="module")
def exported(tmp_path_factory, seeded_vae):
    """kind -> (checkpoint path, exported html path)."""
    d = tmp_path_factory.mktemp("export")
    ckpts = {
        "mlp-z2": seeded_vae(d, "mlp-z2", "digits", latent_dim=2, hidden=(32,)),
        "conv": seeded_vae(d, "conv", "mnist-5k", latent_dim=4, arch="conv", hidden=(32,), conv_channels=(8, 16)),
    }
    if os.path.exists(default_checkpoint_path()):
        ckpts["shipped"] = default_checkpoint_path()
    out = {}
    for kind, path in ckpts.items():
        html = str(d / f"{kind}.html")
        export_html(path, html, points=500, iw_samples=5)
        out[kind] = (path, html)
    return out


def open_offline(page, html_path: str) -> list[str]:
    """Open the file with the network blocked; returns every URL the page asked for."""
    asked = []

    def route(r):
        asked.append(r.request.url)
        r.continue_() if r.request.url.startswith("file://") else r.abort()

    page.route("**/*", route)
    page.goto("file://" + html_path)
    page.wait_for_function("() => window.__vaeExport && window.__vaeExport.ready", timeout=60_000)
    return asked


def hook(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.__vaeExport))")


def canvas_rgb(page, testid: str) -> np.ndarray:
    h, w, px = page.locator(f"[data-testid={testid}]").evaluate(
        "c => [c.height, c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]"
    )
    return np.array(px, dtype=np.float64).reshape(h, w, 4)[..., :3]


def torch_rgb(path: str, z) -> np.ndarray:
    """PyTorch's E[x|z] (float32 weights) as (H, W, 3) bytes."""
    ck = load_checkpoint(path)
    with torch.no_grad():
        img = to_display(ck.model.decode_mean(torch.tensor([z], dtype=torch.float32))[0], ck.model_config.input_shape)
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    return img * 255


def page_data(html_path: str) -> dict:
    text = open(html_path, encoding="utf-8").read()
    return json.loads(re.search(r'id="vae-data">(.*?)</script>', text, re.S).group(1))


@pytest.mark.parametrize("kind", ["shipped", "mlp-z2", "conv"])
def test_exported_explorer_works_offline(page, exported, kind):
    if kind not in exported:
        pytest.skip("the shipped checkpoint is not present")
    path, html = exported[kind]
    asked = open_offline(page, html)
    assert asked == ["file://" + html], f"the page asked for more than itself: {asked}"
    h = hook(page)
    data = page_data(html)
    n = data["points"]["n"]
    assert h["mapDrawn"] == n == min(500, data["n_test"])
    print(f"{kind}: interactive {h['readyMs']:.0f} ms after navigation start")

    # hover: the tooltip shows the point's test image
    row = 37
    xy = page.evaluate("r => window.__vaeExport.pointXY(r)", row)
    page.mouse.move(*xy)
    page.wait_for_function("() => window.__vaeExport.hovered !== null")
    test_index = hook(page)["hovered"]
    assert page.locator("[data-testid=export-tip]").is_visible()
    ck = load_checkpoint(path)
    tc = ck.train_config
    x = eval_targets(load_dataset(tc.dataset, test_fraction=tc.test_fraction).x_test, tc.binarize)
    img = to_display(x[test_index], ck.model_config.input_shape)
    img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    np.testing.assert_allclose(
        page.locator("[data-testid=export-tip] canvas").evaluate(
            "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
        ),
        np.concatenate([np.round(img * 255), np.full(img.shape[:2] + (1,), 255.0)], axis=2).ravel(),
        atol=1.0,
    )

    # click: the point's mean goes into the sliders, its stored numbers are shown
    page.mouse.click(*xy)
    page.wait_for_function("t => window.__vaeExport.selected === t", arg=test_index)
    idx = np.frombuffer(base64.b64decode(data["points"]["index"]), "<i4")
    r = int(np.flatnonzero(idx == test_index)[0])
    k = data["points"]["k"]
    mu = np.frombuffer(base64.b64decode(data["points"]["means"]), "<f4").reshape(n, k)[r]
    np.testing.assert_allclose(hook(page)["z"], np.clip(mu, -3, 3), atol=1e-6)
    elbo = np.frombuffer(base64.b64decode(data["points"]["elbo"]), "<f4")[r]
    assert page.locator("[data-stat=elbo]").inner_text() == f"{elbo:.2f}"
    assert page.locator("[data-stat=log_px]").inner_text() != "n/a"

    # a slider drag changes the picture; the picture is PyTorch's decode of the sliders' z
    before = canvas_rgb(page, "export-decoded")
    np.testing.assert_allclose(before, torch_rgb(path, hook(page)["z"]), atol=F16_BYTES)
    box = page.locator("[data-testid=export-slider-0]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    frames = hook(page)["frames"]
    for f in (0.6, 0.75, 0.9):
        page.mouse.move(box["x"] + 8 + f * (box["width"] - 16), y)
    page.wait_for_function("n => window.__vaeExport.frames > n", arg=frames)
    page.mouse.up()
    page.wait_for_timeout(100)
    after, z = canvas_rgb(page, "export-decoded"), hook(page)["z"]
    assert z[0] > 1.5
    assert np.abs(after - before).max() > 20, "the picture must change when the slider moves"
    np.testing.assert_allclose(after, torch_rgb(path, z), atol=F16_BYTES)
    page.wait_for_function("() => window.__vaeExport.traversalFrames >= 2")  # redrawn after the release
    assert canvas_rgb(page, "export-traversal").std() > 10

    # buttons: z = 0, then a prior sample
    page.get_by_test_id("export-zero").click()
    page.wait_for_function("() => window.__vaeExport.z.every(v => v === 0)")
    np.testing.assert_allclose(canvas_rgb(page, "export-decoded"), torch_rgb(path, [0.0] * k), atol=F16_BYTES)
    page.get_by_test_id("export-prior").click()
    page.wait_for_function("() => window.__vaeExport.z.some(v => v !== 0)")
