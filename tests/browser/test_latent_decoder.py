"""The latent_decoder component in real headless Chromium (tests/browser/component_app.py): decoding
in the browser (MLP and conv decoders) and on the server (the fallback; pixels passed as component data)."""

from __future__ import annotations

import time
import urllib.parse

import numpy as np
import pytest
import torch

from tests.harness.browser import (
    WebSocketBytes,
    canvas_pixels,
    drag_slider,
    hook,
    save_screenshot,
    slider,
    slider_track,
    slider_values,
    wait_for_frames,
)
from vae_core.checkpoints import load_checkpoint

pytestmark = pytest.mark.browser


def open_app(page, server, ckpt: str | None = None) -> None:
    url = server.url + ("/?ckpt=" + urllib.parse.quote(ckpt) if ckpt else "")
    page.goto(url)
    wait_for_frames(page, 1)


def expected_rgba(ckpt_path: str, z: list[float]) -> np.ndarray:
    """What the canvas must show: PyTorch E[x|z] as (H, W, 3) bytes (grey repeated, RGB as is).

    float64: in float32 torch's ContinuousBernoulli clamps probs to [eps, 1-eps], which bends
    the mean for |logit| > 16; the JS decoder uses the exact formula.
    """
    model = load_checkpoint(ckpt_path).model.double()
    with torch.no_grad():
        mean = model.decode_mean(torch.tensor([z], dtype=torch.float64)).clamp(0, 1)[0].numpy()  # (C, H, W)
    img = np.repeat(mean, 3, axis=0) if mean.shape[0] == 1 else mean[:3]
    return np.round(img.transpose(1, 2, 0) * 255)


def shown_rgb(page) -> np.ndarray:
    h, w = page.locator("[data-testid=vae-decoder-canvas]").evaluate("c => [c.height, c.width]")
    return np.array(canvas_pixels(page), dtype=np.float64).reshape(h, w, 4)[..., :3]


def wait_for_python_state(page, total: float) -> None:
    """component_app prints sum(z) as Python holds it."""
    page.wait_for_function(
        "t => { const e = document.querySelector('[data-testid=t-state]');"
        " return e && Math.abs(parseFloat(e.textContent) - t) < 1e-3; }",
        arg=total,
    )


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_first_frame_matches_pytorch(page, component_server, tiny_checkpoints, kind):
    path = tiny_checkpoints[kind]
    open_app(page, component_server, path)
    got = shown_rgb(page)
    want = expected_rgba(path, [0.0] * 4)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1.0)
    assert want.std() > 10, "test model decodes to a flat image; the comparison would prove little"


def test_image_changes_while_dragging(page, component_server, tiny_checkpoints):
    path = tiny_checkpoints["grey"]
    open_app(page, component_server, path)
    sent_before = hook(page)["sent"]
    images, sent_during = [], []

    def sample(_):  # the mouse button is still down here
        images.append(shown_rgb(page))
        sent_during.append(hook(page)["sent"])

    fractions = [0.5 + 0.05 * i for i in range(1, 10)]
    drag_slider(page, 1, fractions, on_step=sample)
    distinct = {img.tobytes() for img in images}
    assert len(distinct) >= len(fractions) - 1, "the image must follow the slider while it is dragged"
    assert sent_during == [sent_before] * len(fractions), "z must reach Python only on release"
    # each mid-drag frame is the PyTorch decode of the z the slider showed at that moment
    z = hook(page)["z"]
    np.testing.assert_allclose(images[-1], expected_rgba(path, z), atol=1.0)
    # release: one message to Python, which now holds the dragged z
    page.wait_for_function("n => window.__vaeDecoder.sent > n", arg=sent_before)
    wait_for_python_state(page, sum(z))
    assert z[1] > 1.5 and z[0] == 0.0


def test_z_from_python_moves_sliders(page, component_server, tiny_checkpoints):
    path = tiny_checkpoints["rgb"]
    open_app(page, component_server, path)
    frames = hook(page)["frames"]
    page.get_by_role("button", name="point").click()
    want = torch.linspace(-2, 2, 4).tolist()
    page.wait_for_function("w => window.__vaeDecoder.z.every((v, i) => Math.abs(v - w[i]) < 1e-6)", arg=want)
    assert slider_values(page) == pytest.approx(want, abs=0.006)  # sliders snap to their 0.01 step
    assert hook(page)["frames"] > frames
    np.testing.assert_allclose(shown_rgb(page), expected_rgba(path, want), atol=1.0)
    page.get_by_role("button", name="zero").click()
    page.wait_for_function("() => window.__vaeDecoder.z.every(v => v === 0)")
    assert slider_values(page) == [0.0] * 4


def test_release_echo_does_not_move_other_sliders(page, component_server, tiny_checkpoints):
    """Python echoes the released z back; it must not undo a second slider dragged meanwhile."""
    open_app(page, component_server, tiny_checkpoints["grey"])
    from_python = hook(page)["zFromPython"]
    drag_slider(page, 0, [0.9])
    wait_for_python_state(page, hook(page)["z"][0])
    drag_slider(page, 2, [0.1, 0.2])
    page.wait_for_function("() => window.__vaeDecoder.sent >= 2")
    z = hook(page)["z"]
    wait_for_python_state(page, sum(z))
    assert z[0] > 1.5 and z[2] < -1.5
    assert slider_values(page)[0] == pytest.approx(z[0]) and slider_values(page)[2] == pytest.approx(z[2])
    assert hook(page)["zFromPython"] == from_python  # the echoes never reset the sliders


def test_weights_are_sent_and_parsed_once(page, component_server):
    """The ~1.7 MB shipped decoder goes over the websocket once; reruns carry only its id."""
    ws = WebSocketBytes(page)
    open_app(page, component_server)  # default: the shipped 784-400-16 checkpoint
    first = hook(page)
    assert first["weightsReceived"] == 1 and first["weightsParsed"] == 1
    assert max(ws.frames) > 1_000_000  # the payload itself was seen on the wire
    mark = ws.mark()
    for name in ["point", "zero", "point"]:
        page.get_by_role("button", name=name).click()
        page.wait_for_timeout(300)
    drag_slider(page, 3, [0.7])
    page.wait_for_function("() => window.__vaeDecoder.sent >= 1")
    page.wait_for_timeout(500)
    later = hook(page)
    assert later["weightsReceived"] == 1 and later["weightsParsed"] == 1
    assert ws.since(mark) and max(ws.since(mark)) < 50_000, ws.since(mark)


def test_lost_weights_are_requested_again(page, component_server, tiny_checkpoints):
    open_app(page, component_server, tiny_checkpoints["grey"])
    page.evaluate("() => globalThis.__vaeDecoderNets.clear()")
    page.get_by_role("button", name="point").click()  # a rerun without weights: the browser asks for them
    page.wait_for_function("() => window.__vaeDecoder.weightsParsed === 2")
    page.wait_for_function("() => window.__vaeDecoder.z[0] === -2")
    assert hook(page)["weightsReceived"] == 2


def test_screenshot_for_review(page, component_server):
    open_app(page, component_server)
    drag_slider(page, 0, [0.8])
    page.locator(slider(0)).wait_for()
    path = save_screenshot(page, "latent_decoder_component.png")
    assert path.endswith(".png")


def labels_cut_off(page) -> list[str]:
    """Slider labels whose text does not fit in their box."""
    return page.locator(".vae-dec-label").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight + 1)"
        ".map(e => e.textContent)"
    )


@pytest.mark.parametrize("width", [1024, 1400])
def test_long_slider_labels_are_not_cut_off(page, component_server, width):
    """The Explorer's longest label, "z5 · KL 0.06 · collapsed", wraps instead of ending in "collap…"."""
    page.set_viewport_size({"width": width, "height": 900})
    open_app(page, component_server)  # the shipped 16-dim model: dims 5, 10, 15 carry the long label
    labels = page.locator(".vae-dec-label").all_inner_texts()
    assert "z5 · KL 0.06 · collapsed" in labels
    assert labels_cut_off(page) == []
    assert page.locator("[data-testid=vae-decoder-slider-0]").get_attribute("min") == "-3"  # the range: data
    assert page.locator("[data-testid=vae-decoder-slider-0]").get_attribute("step") == "0.01"


def test_decoding_is_throttled_to_animation_frames(page, component_server, tiny_checkpoints):
    """200 input events in one task draw one frame, showing the last value."""
    path = tiny_checkpoints["grey"]
    open_app(page, component_server, path)
    page.wait_for_timeout(200)
    frames = hook(page)["frames"]
    page.locator(slider(3)).evaluate("""el => { for (let i = 0; i < 200; i++) {
        el.value = String(-2 + i * 0.01); el.dispatchEvent(new Event("input", { bubbles: true })); } }""")
    page.wait_for_function("n => window.__vaeDecoder.frames > n", arg=frames)
    page.wait_for_timeout(200)
    h = hook(page)
    assert h["frames"] == frames + 1
    assert h["z"][3] == pytest.approx(-0.01)
    np.testing.assert_allclose(shown_rgb(page), expected_rgba(path, h["z"]), atol=1.0)


# --- conv decoders in the browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def conv_checkpoints(tmp_path_factory, make_seeded_checkpoints):
    """Conv VAEs: grey 28x28 and RGB 32x32."""
    return make_seeded_checkpoints(
        tmp_path_factory.mktemp("conv"),
        [("grey", (1, 28, 28), "bernoulli"), ("rgb", (3, 32, 32), "continuous-bernoulli")],
        arch="conv",
        conv_channels=(4, 8),
    )


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_conv_decoder_runs_in_the_browser_and_follows_a_drag(page, component_server, conv_checkpoints, kind):
    path = conv_checkpoints[kind]
    open_app(page, component_server, path)
    assert hook(page)["mode"] == "browser"
    np.testing.assert_allclose(shown_rgb(page), expected_rgba(path, [0.0] * 4), atol=1.0)
    sent_before, images = hook(page)["sent"], []
    drag_slider(page, 1, [0.5 + 0.08 * i for i in range(1, 6)], on_step=lambda _: images.append(shown_rgb(page)))
    assert len({img.tobytes() for img in images}) >= 4, "the image must follow the slider while it is dragged"
    z = hook(page)["z"]
    assert z[1] > 1.5
    np.testing.assert_allclose(images[-1], expected_rgba(path, z), atol=1.0)  # mid-drag frame = PyTorch decode
    page.wait_for_function("n => window.__vaeDecoder.sent > n", arg=sent_before)  # z reaches Python on release
    wait_for_python_state(page, sum(z))


# --- server mode (the fallback: ?server=1 here, the toggle off in the Explorer) ------------------------


def open_server_mode(page, server, ckpt: str, preview_ms: int = 100) -> None:
    page.goto(f"{server.url}/?server=1&preview_ms={preview_ms}&ckpt={urllib.parse.quote(ckpt)}")
    page.wait_for_function(
        "() => window.__vaeDecoder && window.__vaeDecoder.mode === 'server' && window.__vaeDecoder.frames >= 1"
    )


def server_expected(ckpt_path: str, z: list[float]) -> np.ndarray:
    """PyTorch's E[x|z] as the server computes it (float32), as (H, W, 3) bytes."""
    model = load_checkpoint(ckpt_path).model
    with torch.no_grad():
        mean = model.decode_mean(torch.tensor([z])).clamp(0, 1)[0].numpy()  # (C, H, W)
    img = np.repeat(mean, 3, axis=0) if mean.shape[0] == 1 else mean[:3]
    return np.round(img.transpose(1, 2, 0) * 255)


def wait_for_image_of_sliders(page) -> list[float]:
    """Until the painted image is the one decoded from the z the sliders show; that z."""
    page.wait_for_function("""() => { const h = window.__vaeDecoder, s = [...document.querySelectorAll('*')]
        .map(e => e.shadowRoot).filter(Boolean).flatMap(r => [...r.querySelectorAll('[data-testid^=vae-decoder-slider-]')]);
      return s.length && s.every((el, i) => parseFloat(el.value) === h.z[i]); }""")  # noqa: E501
    return hook(page)["z"]


@pytest.mark.parametrize("kind", ["conv-grey", "conv-rgb", "mlp-grey"])
def test_server_mode_first_image_matches_pytorch(page, component_server, conv_checkpoints, tiny_checkpoints, kind):
    path = conv_checkpoints[kind[5:]] if kind.startswith("conv") else tiny_checkpoints[kind[4:]]
    open_server_mode(page, component_server, path)
    assert hook(page)["z"] == [0.0] * 4
    want = server_expected(path, [0.0] * 4)
    np.testing.assert_allclose(shown_rgb(page), want, atol=1.0)
    assert want.std() > 10, "test model decodes to a flat image; the comparison would prove little"
    assert page.locator("[data-testid=vae-decoder-status]").inner_text().startswith("decoded on the server")


def test_server_mode_key_steps_show_each_new_z(page, component_server, conv_checkpoints):
    path = conv_checkpoints["grey"]
    open_server_mode(page, component_server, path)
    images = [shown_rgb(page)]
    page.locator(slider(1)).focus()
    for _ in range(3):
        frames = hook(page)["frames"]
        page.keyboard.press("ArrowRight")
        page.wait_for_function("n => window.__vaeDecoder.frames > n", arg=frames)
        z = wait_for_image_of_sliders(page)
        images.append(shown_rgb(page))
        np.testing.assert_allclose(images[-1], server_expected(path, z), atol=1.0)
    assert z == pytest.approx([0.0, 0.03, 0.0, 0.0])
    assert len({img.tobytes() for img in images}) == 4
    assert hook(page)["sent"] == 3, "one request per key step (its input and change events share it)"
    wait_for_python_state(page, sum(z))


def test_server_mode_image_follows_a_drag_at_server_pace(page, component_server, conv_checkpoints):
    """While the mouse is down, previews at most every 100 ms, one in flight; the release is exact."""
    path = conv_checkpoints["grey"]
    open_server_mode(page, component_server, path, preview_ms=100)
    y, x0, w = slider_track(page, 2)
    h0 = hook(page)
    page.mouse.move(x0 + w / 2, y)
    page.mouse.down()
    t0 = time.perf_counter()
    for i in range(1, 31):  # ~1.5 s of dragging right
        page.mouse.move(x0 + w * (0.5 + 0.45 * i / 30), y)
        page.wait_for_timeout(50)
    # the image follows the drag: frames arrive while the button is still down (however slow the machine)
    page.wait_for_function("n => window.__vaeDecoder.frames >= n", arg=h0["frames"] + 3, timeout=300_000)
    during, elapsed = hook(page), time.perf_counter() - t0
    page.mouse.up()
    assert during["sent"] - h0["sent"] <= elapsed / 0.1 + 1, "previews at most every preview_ms"
    assert during["lost"] == 0
    z = wait_for_image_of_sliders(page)
    assert z[2] > 2.0
    np.testing.assert_allclose(shown_rgb(page), server_expected(path, z), atol=1.0)
    wait_for_python_state(page, sum(z))


def test_server_mode_without_previews_decodes_on_release_only(page, component_server, conv_checkpoints):
    path = conv_checkpoints["grey"]
    open_server_mode(page, component_server, path, preview_ms=0)
    y, x0, w = slider_track(page, 0)
    h0 = hook(page)
    page.mouse.move(x0 + w / 2, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x0 + w * (0.5 - 0.04 * i), y)
        page.wait_for_timeout(50)
    assert hook(page)["sent"] == h0["sent"] and hook(page)["frames"] == h0["frames"]
    page.mouse.up()
    z = wait_for_image_of_sliders(page)
    assert hook(page)["sent"] == h0["sent"] + 1 and z[0] < -1.0
    np.testing.assert_allclose(shown_rgb(page), server_expected(path, z), atol=1.0)


def test_server_mode_z_from_python_moves_sliders(page, component_server, conv_checkpoints):
    path = conv_checkpoints["rgb"]
    open_server_mode(page, component_server, path)
    page.get_by_role("button", name="point").click()
    want = torch.linspace(-2, 2, 4).tolist()
    page.wait_for_function("w => window.__vaeDecoder.z.every((v, i) => Math.abs(v - w[i]) < 1e-6)", arg=want)
    assert slider_values(page) == pytest.approx(want, abs=0.006)
    np.testing.assert_allclose(shown_rgb(page), server_expected(path, want), atol=1.0)
    page.get_by_role("button", name="zero").click()
    page.wait_for_function("() => window.__vaeDecoder.z.every(v => v === 0)")
    assert slider_values(page) == [0.0] * 4
    np.testing.assert_allclose(shown_rgb(page), server_expected(path, [0.0] * 4), atol=1.0)
