"""Animated GIF export of decoded image sequences (a traversal, an interpolation, an alpha sweep).

Frames are display arrays as vae_core.images.to_display makes them: (T, H, W) grey or (T, H, W, 3)
RGB in [0, 1]. Grey frames are written with a 256-level grey palette, so they decode back exactly
(to 8 bits); RGB frames go through Pillow's adaptive 256-colour palette (approximate). Pillow merges a
frame identical to the one before it into that one (adding their durations), so a collapsed latent
dim, whose frames do not change, plays as one long frame.
"""

from __future__ import annotations

import io
import math

import numpy as np

from .images import tile

MAX_FRAMES = 200  # a GIF for a download button, not a video


def gif_bytes(frames: np.ndarray, ms_per_frame: int = 150, scale: int = 1, *, loop: bool = True) -> bytes:
    """(T, H, W[, 3]) in [0, 1] -> GIF bytes, one frame per t, each shown ms_per_frame ms, upscaled by
    nearest neighbour `scale` times (no blur); loop=True repeats forever (GIF loop count 0)."""
    from PIL import Image

    a = np.asarray(frames, np.float32)
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3) or len(a) == 0:
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, 3) with T >= 1; got {a.shape}")
    if len(a) > MAX_FRAMES:
        raise ValueError(f"{len(a)} frames is more than the {MAX_FRAMES} a GIF export takes")
    if ms_per_frame < 10 or scale < 1:
        raise ValueError(
            f"ms_per_frame must be >= 10 (GIF counts hundredths) and scale >= 1; got {ms_per_frame}, {scale}"
        )
    a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if scale > 1:
        a = np.repeat(np.repeat(a, scale, 1), scale, 2)
    images = [Image.fromarray(f) for f in a]  # mode "L" for grey, "RGB" for colour
    buf = io.BytesIO()
    extra = {"loop": 0} if loop else {}
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(ms_per_frame), disposal=1, **extra
    )
    return buf.getvalue()


def grid_frames(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Rows of image sequences -> one frame per step: (R, T, H, W[, 3]) -> (T, H', W'[, 3]), frame t
    tiling images[:, t] (row r of the input at grid cell r // cols, r % cols; `cols` defaults to R,
    one line), empty cells and gaps white. E.g. a traversal (one row per dim) plays all dims at once."""
    a = np.asarray(images, np.float32)
    r, t = a.shape[:2]
    cols = max(1, min(cols or r, r))
    lines = math.ceil(r / cols)
    cells = np.ones((lines * cols, *a.shape[1:]), np.float32)  # (lines * cols, T, H, W[, 3])
    cells[:r] = a
    cells = cells.reshape(lines, cols, *a.shape[1:])
    return np.stack([tile(cells[:, :, i], pad=pad) for i in range(t)])
