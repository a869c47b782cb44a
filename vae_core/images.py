"""Images in and out: upload/drawing preprocessing to a model's input, display arrays, PNG export.

Preprocessing follows how MNIST was made (LeCun et al.): grey, ink bright on a dark background,
the ink's bounding box scaled to fit 20/28 of the frame and centred by its centre of mass.

Every image file or upload is read through one checked reader (`_read_checked`): the pixel count
from the header is refused before anything is decoded (a 74-byte PNG can declare 100000x100000),
every PIL error is caught, and the message names the file.
"""

from __future__ import annotations

import io
import os
import stat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is made or read: showing numpy images needs none
    import torch

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the JPEG variant many phone cameras write
MAX_PIXELS = 25_000_000  # refuse decompression bombs before decoding
MIN_INK_CONTRAST = 0.1  # ink must stand this far above the background level to be cropped to


class ImageError(ValueError):
    """A file or upload is not a usable image: names it and says why."""


def _read_checked(fp, name: str, formats: tuple[str, ...] | None):
    """File object -> decoded PIL image. The header is read first (PIL opens lazily) and its pixel
    count checked before decoding; PIL's own bomb check (DecompressionBombError, not an OSError)
    fires even earlier for the largest. Any other failure of PIL is a corrupt file."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(fp)
        if formats is not None and img.format not in formats:
            raise ImageError(f"{name}: a {img.format} image; only PNG and JPEG are accepted")
        if img.width * img.height > MAX_PIXELS:
            raise ImageError(
                f"{name}: {img.width}x{img.height} pixels is more than the {MAX_PIXELS:,} "
                "allowed (refused before decoding)"
            )
        img.verify()  # checks chunk CRCs and the end marker (load() alone pads short files)
        fp.seek(0)
        img = Image.open(fp)  # verify() leaves the image unusable: open again
        img.load()  # decodes fully: a corrupt pixel stream fails here
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: declares too many pixels to decode, refused before decoding ({e})") from None
    except UnidentifiedImageError:
        only = " (only PNG and JPEG are accepted)" if formats else ""
        raise ImageError(f"{name}: not an image{only}") from None
    except Exception as e:  # OSError, SyntaxError, struct.error, zlib.error, MemoryError, ...: all PIL
        raise ImageError(f"{name}: the image is corrupt or truncated ({type(e).__name__}: {e})") from None
    return img


def open_image_file(path: str, *, name: str | None = None, formats: tuple[str, ...] | None = None):
    """An image file -> decoded PIL image, checked like an upload. `name` (default: the path) is how
    messages refer to it; `formats` (e.g. FORMATS: PNG and JPEG) limits the PIL formats accepted,
    None takes any format PIL reads."""
    name = name or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named x.png must not block the open
    except OSError as e:
        raise ImageError(f"{name}: cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{name}: not a regular file")
        if st.st_size == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
        return _read_checked(fh, name, formats)


def open_upload(data: bytes, name: str = "upload"):
    """Bytes -> PIL image, checked: size, format (PNG or JPEG by content, not by name), integrity."""
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"{name}: {len(data) / 2**20:.1f} MB is too big (limit {MAX_UPLOAD_BYTES // 2**20} MB)")
    return _read_checked(io.BytesIO(data), name, FORMATS)


def describe_image(a: np.ndarray) -> str:
    """An image array (H, W) or (H, W, C) in words for messages: "28x28 grey 8-bit"."""
    colour = "RGB" if a.ndim == 3 else "grey"
    depth = {1: "8-bit", 2: "16-bit"}.get(a.dtype.itemsize, str(a.dtype)) if a.dtype.kind == "u" else str(a.dtype)
    return f"{a.shape[1]}x{a.shape[0]} {colour} {depth}"


def image_array(img, name: str = "image") -> np.ndarray:
    """Decoded PIL image -> its pixels, unscaled: (H, W) uint8 grey, (H, W, 3) uint8 RGB, or (H, W)
    uint16 for 16-bit grey (PNG 'I;16', or 'I' as older Pillow opens it). vae_core.data scales."""
    mode = img.mode
    if mode in ("1", "L", "P"):
        return np.asarray(img.convert("L"))
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)  # '>u2' for I;16B: native order
    if mode == "I":
        a = np.asarray(img)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageError(
                f"{name}: 32-bit integer pixels from {a.min()} to {a.max()}; only 8- and 16-bit images are read"
            )
        return a.astype(np.uint16)
    if mode == "F":
        return np.asarray(img, np.float32)
    return np.asarray(img.convert("RGB"))


def _to_grey_array(img) -> np.ndarray:
    """PIL image -> (H, W) float in [0, 1]; transparency is composited onto white paper."""
    from PIL import Image

    if img.mode.startswith("I"):  # 16-bit grey: convert("L") would saturate it
        return image_array(img).astype(np.float32) / 65535.0
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), np.float32) / 255.0


def _to_rgb_array(img) -> np.ndarray:
    from PIL import Image

    if img.mode.startswith("I"):
        return np.repeat(_to_grey_array(img)[..., None], 3, -1)
    if img.mode in ("RGBA", "LA", "PA"):
        paper = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, img.convert("RGBA"))
    return np.asarray(img.convert("RGB"), np.float32) / 255.0


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    if a.ndim == 2:
        return np.asarray(Image.fromarray(a, mode="F").resize((w, h), Image.BILINEAR), np.float32)
    return np.stack([_resize(a[..., c], h, w) for c in range(a.shape[-1])], -1)


def _border(a: np.ndarray) -> np.ndarray:
    """The outer 1/10 of each side of (H, W): where a photo shows paper, not ink."""
    h, w = a.shape
    bh, bw = max(1, h // 10), max(1, w // 10)
    return np.concatenate([a[:bh].ravel(), a[-bh:].ravel(), a[:, :bw].ravel(), a[:, -bw:].ravel()])


def light_background(a: np.ndarray) -> bool:
    """Is the border (outer 1/10 of each side) mostly light? (H, W) in [0, 1]."""
    return float(np.median(_border(a))) > 0.5


def remove_background(a: np.ndarray) -> np.ndarray:
    """Bright ink on a darker background (H, W) -> background 0, ink stretched to a peak of 1.

    A photographed page inverts to a background of ~0.1, not 0, which a crop to the ink would take
    for ink. Its level is the border's median plus three robust standard deviations (1.4826 * MAD),
    so sensor noise and a mild lighting gradient fall below it. No ink above it: `a` unchanged.
    """
    border = _border(a)
    med = float(np.median(border))
    level = med + 3 * 1.4826 * float(np.median(np.abs(border - med)))
    peak = float(a.max())
    if peak - level < MIN_INK_CONTRAST:
        return a
    return np.clip((a - level) / (peak - level), 0, 1)


def center_like_mnist(a: np.ndarray, size: int, box: float = 20 / 28) -> np.ndarray:
    """Ink (H, W) bright-on-dark -> (size, size): crop to the ink, fit in box*size keeping the aspect
    ratio, then shift so the centre of mass sits at the centre."""
    ink = a > 0.1 * a.max() if a.max() > 0 else np.zeros_like(a, bool)
    if not ink.any():
        return _resize(a, size, size)
    rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = box * size / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.clip(_resize(crop, h, w), 0, 1)
    out = np.zeros((size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = small
    total = out.sum()
    if total > 0:
        yy, xx = np.mgrid[:size, :size]
        dy = int(round((size - 1) / 2 - (yy * out).sum() / total))
        dx = int(round((size - 1) / 2 - (xx * out).sum() / total))
        out = np.roll(out, (dy, dx), (0, 1))  # ink stays inside: the box leaves a 4px margin
    return out


def preprocess(img, input_shape: tuple[int, ...], *, invert: str = "auto", center: bool = True) -> torch.Tensor:
    """PIL image -> (*input_shape) float32 in [0, 1].

    invert: 'auto' flips light backgrounds (paper, a white canvas) to MNIST's white-on-black,
    'yes' / 'no' force it. center: MNIST-style crop, scale and centre (grey square inputs only).
    """
    if invert not in ("auto", "yes", "no"):
        raise ValueError(f"invert must be auto, yes or no, got {invert!r}")
    if len(input_shape) == 1:
        side = int(round(input_shape[0] ** 0.5))
        if side * side != input_shape[0]:
            raise ImageError(f"this model takes flat vectors of length {input_shape[0]}, not images")
        shape = (1, side, side)
    else:
        shape = tuple(input_shape)
    c, h, w = shape
    if c == 1:
        a = _to_grey_array(img)
        if invert == "yes" or (invert == "auto" and light_background(a)):
            a = 1.0 - a
        a = center_like_mnist(remove_background(a), h) if center and h == w else _resize(a, h, w)
        x = np.clip(a, 0, 1)[None]
    elif c == 3:
        a = _resize(_to_rgb_array(img), h, w)
        x = np.clip(1.0 - a if invert == "yes" else a, 0, 1).transpose(2, 0, 1)
    else:
        raise ImageError(f"cannot feed an image to a model with {c} channels")
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).reshape(input_shape)


def to_display(x: torch.Tensor | np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Model-space images (..., *input_shape) -> (..., H, W) grey or (..., H, W, 3) RGB in [0, 1].
    Flat inputs are shown as a square when D is a square number, else as a 1-pixel-high strip."""
    if isinstance(x, np.ndarray):  # e.g. a replay's stored snapshots: no torch needed (nor loaded)
        a = np.clip(x.astype(np.float32, copy=False), 0, 1)
    else:
        import torch

        a = torch.as_tensor(x).detach().float().clamp(0, 1).cpu().numpy()
    if len(input_shape) == 1:
        d = input_shape[0]
        side = int(round(d**0.5))
        return a.reshape(*a.shape[:-1], side, side) if side * side == d else a.reshape(*a.shape[:-1], 1, d)
    c = input_shape[0]
    a = np.moveaxis(a, -3, -1)  # (..., H, W, C)
    return a[..., 0] if c == 1 else a[..., :3]


def upscale(a: np.ndarray, target: int = 196) -> np.ndarray:
    """Nearest-neighbour upscale so small images stay crisp in the browser (no smoothing)."""
    f = max(1, target // max(a.shape[0], a.shape[1]))
    return np.repeat(np.repeat(a, f, 0), f, 1)


def tile(images: np.ndarray, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """(R, C, H, W[, 3]) -> one (R*(H+pad)-pad, C*(W+pad)-pad[, 3]) mosaic."""
    r, c, h, w = images.shape[:4]
    extra = images.shape[4:]
    out = np.full((r * (h + pad) - pad, c * (w + pad) - pad, *extra), pad_value, np.float32)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = images[i, j]
    return out


def png_bytes(a: np.ndarray, scale: int = 1) -> bytes:
    """(H, W) or (H, W, 3) in [0, 1] -> PNG bytes (8-bit), optionally upscaled by nearest neighbour."""
    from PIL import Image

    a = np.clip(np.asarray(a, np.float32), 0, 1)
    if scale > 1:
        a = np.repeat(np.repeat(a, scale, 0), scale, 1)
    buf = io.BytesIO()
    Image.fromarray((a * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def sprite_sheet(images: np.ndarray) -> tuple[bytes, int]:
    """Display images (N, H, W[, 3]) in [0, 1] -> (one PNG sheet, cols): ceil(sqrt(N)) per row, 1 px
    white gaps, image i at row i // cols, column i % cols (the browser crops it from there)."""
    import math

    n = images.shape[0]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.ones((rows * cols, *images.shape[1:]), np.float32)
    grid[:n] = images
    return png_bytes(tile(grid.reshape(rows, cols, *images.shape[1:]), pad=1)), cols
