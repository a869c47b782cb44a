"""vae_core.gif: the GIF bytes decode back (with PIL) to the frames given, one per t, at the size asked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from vae_core.gif import gif_bytes, grid_frames


def _frames_of(data: bytes) -> tuple[Image.Image, list[np.ndarray]]:
    img = Image.open(io.BytesIO(data))
    assert img.format == "GIF"
    return img, [np.asarray(f.convert("RGB"), np.int16) for f in ImageSequence.Iterator(img)]


def test_grey_frames_round_trip_exactly():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(5, 6, 7)).astype(np.float32) / 255  # 8-bit levels: exact
    img, back = _frames_of(gif_bytes(frames, ms_per_frame=120, scale=3))
    assert len(back) == 5 and img.size == (21, 18)  # (W * 3, H * 3)
    assert img.info.get("loop") == 0 and img.info.get("duration") == 120
    for f, b in zip(frames, back):
        want = np.repeat(np.repeat(np.round(f * 255), 3, 0), 3, 1)
        np.testing.assert_array_equal(b[..., 0], want)
        np.testing.assert_array_equal(b[..., 0], b[..., 2])  # grey
    assert not np.array_equal(back[0], back[1])


def test_rgb_frames_come_back_close():
    t = np.linspace(0, 1, 4, dtype=np.float32)
    frames = np.stack([np.full((8, 8, 3), (v, 1 - v, 0.5), np.float32) for v in t])
    _, back = _frames_of(gif_bytes(frames, scale=1))
    assert len(back) == 4
    for f, b in zip(frames, back):
        assert np.abs(b - f * 255).max() <= 8  # one adaptive palette colour per frame: nearly exact


def test_bad_frames_are_refused():
    with pytest.raises(ValueError):
        gif_bytes(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError):
        gif_bytes(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError):
        gif_bytes(np.zeros((2, 4, 4)), ms_per_frame=0)


def test_grid_frames_tiles_each_step_of_every_row():
    rng = np.random.default_rng(1)
    images = rng.random((3, 4, 5, 6)).astype(np.float32)  # 3 rows (dims), 4 steps, 5x6 images
    frames = grid_frames(images, cols=2, pad=1)
    assert frames.shape == (4, 2 * 5 + 1, 2 * 6 + 1)
    for t in range(4):
        np.testing.assert_array_equal(frames[t, :5, :6], images[0, t])
        np.testing.assert_array_equal(frames[t, :5, 7:], images[1, t])
        np.testing.assert_array_equal(frames[t, 6:, :6], images[2, t])
        assert (frames[t, 6:, 7:] == 1).all() and (frames[t, 5] == 1).all()  # empty cell, gap: white
    assert grid_frames(images).shape == (4, 5, 3 * 6 + 2)  # default: one line
