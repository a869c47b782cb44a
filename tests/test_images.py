"""vae_core.images: upload checks give specific messages; preprocessing recovers a known digit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vae_core import images


def _png(a: np.ndarray, fmt="PNG", mode=None) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    if mode:
        im = im.convert(mode)
    im.save(buf, format=fmt)
    return buf.getvalue()


def _digit() -> np.ndarray:
    """A 28x28 '7'-like stroke, ink 1 on 0, centred like MNIST."""
    a = np.zeros((28, 28), np.float32)
    a[7:9, 8:20] = 1.0
    for r in range(9, 22):
        c = 19 - (r - 9) // 2
        a[r, c - 1 : c + 1] = 1.0
    return images.center_like_mnist(a, 28)


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"", "empty"),
        (b"hello, not an image at all", "not an image"),
        (_png(np.zeros((10, 10)), fmt="GIF"), "only PNG and JPEG"),
        (_png(np.zeros((40, 40)))[:60], "corrupt or truncated"),
    ],
)
def test_bad_uploads_get_specific_messages(data, msg):
    with pytest.raises(images.ImageError, match=msg):
        images.open_upload(data, "x.png")


def test_oversized_upload_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(images.ImageError, match="too big"):
        images.open_upload(b"\x89PNG" + b"0" * 2000, "big.png")


def test_black_on_white_photo_of_a_digit_is_inverted_scaled_and_centred():
    d = _digit()
    # what a phone photo / a drawing looks like: large, dark ink on light paper, off-centre, JPEG
    big = np.ones((200, 260), np.float32)
    big[20:188, 10:178] = 1.0 - np.kron(d, np.ones((6, 6)))
    img = images.open_upload(_png(big, fmt="JPEG", mode="RGB"), "photo.jpg")
    x = images.preprocess(img, (1, 28, 28))
    assert x.shape == (1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
    corr = np.corrcoef(x.numpy().ravel(), d.ravel())[0, 1]
    assert corr > 0.9, corr
    a = x[0].numpy()
    yy, xx = np.mgrid[:28, :28]
    assert abs((yy * a).sum() / a.sum() - 13.5) <= 1 and abs((xx * a).sum() / a.sum() - 13.5) <= 1


def test_transparent_drawing_is_composited_on_white_then_inverted():
    d = _digit()
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = (d * 255).astype(np.uint8)  # black strokes, alpha = ink, transparent elsewhere
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    x = images.preprocess(images.open_upload(buf.getvalue()), (1, 28, 28))
    assert np.corrcoef(x.numpy().ravel(), d.ravel())[0, 1] > 0.95


def test_invert_and_shapes():
    img = Image.fromarray(np.full((8, 8), 200, np.uint8))
    assert float(images.preprocess(img, (1, 8, 8), invert="no", center=False).mean()) == pytest.approx(
        200 / 255, abs=1e-3
    )
    assert float(images.preprocess(img, (1, 8, 8), invert="yes", center=False).mean()) == pytest.approx(
        55 / 255, abs=1e-3
    )
    assert images.preprocess(img, (64,), center=False).shape == (64,)
    rgb = Image.fromarray(np.zeros((40, 30, 3), np.uint8))
    assert images.preprocess(rgb, (3, 32, 32)).shape == (3, 32, 32)
    with pytest.raises(images.ImageError, match="flat vectors"):
        images.preprocess(img, (10,))


def test_png_export_round_trips_and_upscales():
    a = np.random.default_rng(0).random((7, 5))
    out = np.asarray(Image.open(io.BytesIO(images.png_bytes(a, scale=3))), np.float32) / 255
    assert out.shape == (21, 15)
    np.testing.assert_allclose(out[::3, ::3], a, atol=1 / 255)


def test_display_and_tile():
    x = np.random.default_rng(1).random((2, 3, 1, 4, 4)).astype(np.float32)
    d = images.to_display(x, (1, 4, 4))
    assert d.shape == (2, 3, 4, 4)
    t = images.tile(d, pad=1)
    assert t.shape == (2 * 5 - 1, 3 * 5 - 1)
    np.testing.assert_array_equal(t[5:9, 10:14], d[1, 2])
    assert images.to_display(np.ones((2, 3, 4, 4)) * 2, (3, 4, 4)).max() == 1.0


def test_sprite_sheet_places_image_i_at_row_i_div_cols():
    import io

    from PIL import Image

    from vae_core.images import sprite_sheet

    imgs = np.stack([np.full((3, 4), i / 10, np.float32) for i in range(7)])  # 7 images -> 3 per row
    png, cols = sprite_sheet(imgs)
    sheet = np.asarray(Image.open(io.BytesIO(png)), np.float32) / 255
    assert cols == 3 and sheet.shape == (3 * 4 - 1, 3 * 5 - 1)  # 1 px gaps
    for i in range(7):
        r, c = divmod(i, cols)
        np.testing.assert_allclose(sheet[r * 4 : r * 4 + 3, c * 5 : c * 5 + 4], i / 10, atol=1 / 255)
    assert (sheet[2 * 4 :, 1 * 5 :] == 1).all()  # the unused cells are white paper


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4), (16,), (15,)])
def test_to_display_takes_numpy_as_it_takes_tensors(shape):
    """A replay's stored snapshots are numpy: shown without torch, exactly as the same tensor is."""
    import torch

    x = np.random.default_rng(0).uniform(-0.5, 1.5, (2, *shape)).astype(np.float32)
    np.testing.assert_array_equal(images.to_display(x, shape), images.to_display(torch.from_numpy(x), shape))


def test_importing_images_loads_no_torch():
    """The replay page draws its snapshots torch-free: importing vae_core.images must not import torch."""
    import subprocess
    import sys

    code = "import sys, vae_core.images, vae_core.replay; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.strip() == "False"
