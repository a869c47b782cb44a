"""Fault injection, images (issue 9 cases 5, 6, 7, 8): decompression bombs, bad files in an image
folder, 16-bit grey PNGs, and a photographed digit on off-white paper. Every refusal names the file."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vae_core import images
from vae_core.cli import main
from vae_core.data import DatasetError, load_dataset

# --- fixtures made here ---------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _ihdr(w: int, h: int) -> bytes:
    return _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))  # 8-bit grey


def forged_bomb() -> bytes:
    """A tiny PNG whose IHDR (CRC correct) declares 100000x100000 pixels."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _ihdr(100_000, 100_000)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def one_colour_png(side: int = 30_000) -> bytes:
    """A valid side x side white PNG, built without holding the decoded image: 1000 rows are
    deflated once and ended by a full flush, so the block can be repeated; adler32 covers it all."""
    rows = (b"\x00" + b"\xff" * side) * 1000
    c = zlib.compressobj(9)
    block = c.compress(rows) + c.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(side // 1000):
        adler = zlib.adler32(rows, adler)
    idat = block[:2] + block[2:] * (side // 1000) + b"\x03\x00" + struct.pack(">I", adler)  # empty final block
    return b"\x89PNG\r\n\x1a\n" + _ihdr(side, side) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png(a: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format=fmt)
    return buf.getvalue()


def _folder(root, grey_images, n=4):
    for c, cls in enumerate(["cats", "dogs"]):
        (root / cls).mkdir(parents=True)
        for i, a in enumerate(grey_images(n, seed=c)):
            (root / cls / f"{i}.png").write_bytes(_png(a))
    return root


# --- decompression bombs (case 5) ---------------------------------------------------------------


def test_forged_header_bomb_upload_is_refused_before_decoding():
    bomb = forged_bomb()
    assert len(bomb) < 100
    with pytest.raises(
        images.ImageError,
        match=r"^bomb\.png: declares too many pixels to decode, refused "
        r"before decoding",
    ):
        images.open_upload(bomb, "bomb.png")


def test_big_one_colour_png_upload_is_refused_before_decoding():
    png = one_colour_png()
    assert len(png) < 1_200_000  # under a megabyte, 900 million pixels
    with pytest.raises(images.ImageError, match=r"^white\.png: declares too many pixels.*900000000 pixels"):
        images.open_upload(png, "white.png")


def test_pixel_limit_holds_even_with_pils_own_check_off(monkeypatch):
    """Our limit is read from the header whatever PIL's global MAX_IMAGE_PIXELS says."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(
        images.ImageError,
        match=r"^b\.png: 100000x100000 pixels is more than the 25,000,000 "
        r"allowed \(refused before decoding\)",
    ):
        images.open_upload(forged_bomb(), "b.png")
    # between our limit and PIL's (25M < 36M < 89M): only our check stands in the way
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    with pytest.raises(images.ImageError, match=r"6000x6000 pixels is more than"):
        images.open_upload(one_colour_png(6000), "mid.png")


def test_bombs_in_an_image_folder_are_named(tmp_path, grey_images):
    root = _folder(tmp_path / "set", grey_images)
    (root / "cats" / "zz_bomb.png").write_bytes(forged_bomb())
    with pytest.raises(DatasetError, match=r"set/cats/zz_bomb\.png: declares too many pixels") as e:
        load_dataset(str(root))
    assert "Traceback" not in str(e.value)


# --- bad files in an image folder (case 6) ------------------------------------------------------


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", r"the file is empty \(0 bytes\)"),
        ("truncated", r"the image is corrupt or truncated"),
        (b"this is a text file, saved as .png", r"not an image"),
        ("bitflip", r"the image is corrupt or truncated"),
    ],
)
def test_bad_file_in_an_image_folder_is_named_with_its_problem(tmp_path, grey_images, content, problem, capsys):
    root = _folder(tmp_path / "set", grey_images)
    good = (root / "dogs" / "0.png").read_bytes()
    if content == "truncated":
        content = good[: len(good) // 2]
    elif content == "bitflip":
        content = bytearray(good)
        content[60] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
        content = bytes(content)
    (root / "dogs" / "bad.png").write_bytes(content)
    with pytest.raises(DatasetError, match=rf"^{root}/dogs/bad\.png: {problem}"):
        load_dataset(str(root))
    # the CLI says the same in one line (it used to omit the file for a truncated one)
    code = main(
        ["train", "--dataset", str(root), "--cache-dir", str(tmp_path / "ck"), "--device", "cpu", "--epochs", "1"]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {root}/dogs/bad.png: ")


def test_a_fifo_named_png_does_not_hang_the_loader(tmp_path, grey_images):
    root = _folder(tmp_path / "set", grey_images)
    os.mkfifo(root / "cats" / "pipe.png")
    with pytest.raises(DatasetError, match=r"set/cats/pipe\.png: not a regular file"):
        load_dataset(str(root))


def test_open_image_file_names_an_unreadable_path(tmp_path):
    with pytest.raises(images.ImageError, match=r"^shown\.png: cannot be read \(No such file"):
        images.open_image_file(str(tmp_path / "missing.png"), name="shown.png")


# --- 16-bit grey (case 7) -----------------------------------------------------------------------


def test_16_bit_grey_folder_is_scaled_to_unit_interval(tmp_path):
    rng = np.random.default_rng(0)
    stored = []
    for cls in ("a", "b"):
        (tmp_path / "deep" / cls).mkdir(parents=True)
        for i in range(3):
            a = rng.integers(0, 65536, size=(6, 6), dtype=np.uint16)
            a[0, 0], a[0, 1] = 0, 65535
            Image.fromarray(a).save(tmp_path / "deep" / cls / f"{i}.png")
            stored.append(a)
    assert Image.open(tmp_path / "deep" / "a" / "0.png").mode == "I;16"
    d = load_dataset(str(tmp_path / "deep"), test_fraction=0.5)
    assert d.input_shape == (1, 6, 6)  # grey, not RGB
    got = sorted(x.flatten().tolist() for x in np.concatenate([d.x_train.numpy(), d.x_test.numpy()]))
    want = sorted((a.astype(np.float32) / 65535.0).flatten().tolist() for a in stored)
    assert got == want
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0


def test_8_and_16_bit_images_in_one_folder_name_both_files(tmp_path, grey_images):
    root = _folder(tmp_path / "set", grey_images)
    Image.fromarray(np.full((8, 8), 300, np.uint16)).save(root / "dogs" / "9.png")
    with pytest.raises(
        DatasetError,
        match=r"images must share one size and mode; .*cats/0\.png is 8x8 grey "
        r"8-bit but .*dogs/9\.png is 8x8 grey 16-bit",
    ):
        load_dataset(str(root))


def test_16_bit_grey_upload_is_not_saturated():
    img = images.open_upload(_png(np.full((8, 8), 30000, np.uint16)), "deep.png")
    x = images.preprocess(img, (1, 8, 8), invert="no", center=False)
    assert float(x.mean()) == pytest.approx(30000 / 65535, abs=1e-4)
    rgb = images.preprocess(img, (3, 8, 8))
    assert float(rgb.mean()) == pytest.approx(30000 / 65535, abs=1e-4)


# --- a photographed digit (case 8) --------------------------------------------------------------


def _ring_digit() -> np.ndarray:
    """A 28x28 '0' (an elliptic ring, ink 1 on 0): symmetric, so centring by mass keeps its box centred."""
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot((yy - 13.5) / 10, (xx - 13.5) / 7)
    return ((r > 0.7) & (r < 1.0)).astype(np.float32)


@pytest.mark.parametrize("noisy", [False, True])
def test_photo_of_a_dark_digit_on_off_white_paper_is_cropped_and_centred(noisy):
    digit = _ring_digit()
    h, w = 240, 320
    paper = np.broadcast_to(np.array([230, 225, 215], np.float32), (h, w, 3)).copy()
    if noisy:  # sensor noise and a lighting gradient across the page
        paper += np.random.default_rng(0).normal(0, 3, size=(h, w, 1))
        paper += np.linspace(-8, 8, w, dtype=np.float32)[None, :, None]
    ink = np.zeros((h, w), np.float32)
    ink[30:114, 180:264] = np.kron(digit, np.ones((3, 3)))  # small and off-centre: 84 px of 240x320
    photo = paper * (1 - ink[..., None]) + np.array([40, 40, 55], np.float32) * ink[..., None]
    img = images.open_upload(_png(np.clip(photo, 0, 255).astype(np.uint8), fmt="JPEG"), "photo.jpg")
    x = images.preprocess(img, (1, 28, 28))[0].numpy()
    on = x > 0.5
    rows, cols = np.where(on.any(1))[0], np.where(on.any(0))[0]
    # the ink fits MNIST's 20x20 box in the middle of the frame
    assert rows[0] >= 4 and rows[-1] < 24 and cols[0] >= 4 and cols[-1] < 24
    # the paper became background: ~0 everywhere outside the ink's box
    outside = np.ones_like(on)
    outside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = False
    assert float(x[outside].max()) < 0.05
    # and binarized it is the digit, not noise
    ref = images.center_like_mnist(digit, 28) > 0.5
    assert np.corrcoef(on.ravel(), ref.ravel())[0, 1] > 0.8


def test_remove_background_leaves_a_blank_page_alone():
    a = np.full((30, 30), 0.12, np.float32) + np.random.default_rng(1).normal(0, 0.01, (30, 30)).astype(np.float32)
    np.testing.assert_array_equal(images.remove_background(a), a)  # no ink: noise is not stretched to 1
