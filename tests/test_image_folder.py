"""vae_core.image_folder: uint8 images decoded by threads, cached beside the folder, invalidated by
the listing (names, sizes, mtimes)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vae_core.data import DatasetError, _build, _split, load_dataset


def _folder(root, grey_images, n=6, mode="L"):
    from PIL import Image

    imgs, labels, files = [], [], []
    for c, cls in enumerate(["cats", "dogs"]):
        (root / cls).mkdir(parents=True)
        for i, a in enumerate(grey_images(n, side=8, seed=c)):
            if mode == "RGB":
                a = np.stack([a, 255 - a, a // 2], -1)
            f = root / cls / f"{i:02d}.png"
            Image.fromarray(a, mode=mode).save(f)
            imgs.append(a), labels.append(c), files.append(f)
    return np.stack(imgs), np.array(labels), files


def _caches(root):
    return sorted(n for n in os.listdir(root.parent) if n.startswith(f".{root.name}.vae_core"))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_same_pixels_labels_split_and_fingerprint_as_the_in_memory_loader(tmp_path, grey_images, mode):
    x, y, _ = _folder(tmp_path / "imgs", grey_images, mode=mode)
    name = str(tmp_path / "imgs")
    d = load_dataset(name, test_fraction=0.25)
    ref = _build(name, *_split(x, y, 0.25))  # what the loader built before: stack, shuffle, split
    assert d.train_pixels.dtype == torch.uint8  # 1 byte a pixel, float only per batch
    assert d.train_pixels.shape == (9, 1 if mode == "L" else 3, 8, 8)
    assert torch.equal(d.train_pixels, ref.train_pixels) and torch.equal(d.test_pixels, ref.test_pixels)
    assert torch.equal(d.y_train, ref.y_train) and torch.equal(d.y_test, ref.y_test)
    assert torch.equal(d.x_test, ref.x_test) and d.x_test.dtype == torch.float32
    assert d.fingerprint == ref.fingerprint  # so checkpoints trained on it stay cache hits


def test_second_load_maps_the_cache_without_decoding(tmp_path, grey_images):
    _, _, files = _folder(tmp_path / "imgs", grey_images)
    d1 = load_dataset(str(tmp_path / "imgs"))
    assert [n.rsplit(".", 1)[1] for n in _caches(tmp_path / "imgs")] == ["json", "npy"]  # no lock, no temp
    assert d1.pixels_file and os.path.dirname(d1.pixels_file) == str(tmp_path)
    # garbage of the same size and mtime: the listing is unchanged, so nothing may be decoded
    st = os.stat(files[0])
    files[0].write_bytes(b"\0" * st.st_size)
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    d2 = load_dataset(str(tmp_path / "imgs"))
    assert d2.pixels_file == d1.pixels_file and torch.equal(d2.train_pixels, d1.train_pixels)


def test_a_changed_listing_rebuilds_the_cache_and_removes_the_old_one(tmp_path, grey_images):
    from PIL import Image

    _, _, files = _folder(tmp_path / "imgs", grey_images)
    d1 = load_dataset(str(tmp_path / "imgs"))
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(files[0])  # new content, new mtime
    os.utime(files[0], ns=(0, os.stat(files[0]).st_mtime_ns + 10**9))
    d2 = load_dataset(str(tmp_path / "imgs"))
    assert d2.pixels_file != d1.pixels_file and d2.fingerprint != d1.fingerprint
    assert (torch.cat([d2.train_pixels, d2.test_pixels]) == 255).all(1).all(1).all(1).sum() == 1
    assert len(_caches(tmp_path / "imgs")) == 2  # the old pair was removed
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / "cats" / "new.png")
    d3 = load_dataset(str(tmp_path / "imgs"))
    assert len(d3.train_pixels) + len(d3.test_pixels) == 13 and len(_caches(tmp_path / "imgs")) == 2


def test_a_mismatched_image_is_named_and_nothing_is_cached(tmp_path, grey_images):
    from PIL import Image

    _folder(tmp_path / "imgs", grey_images)
    Image.fromarray(np.zeros((9, 7), np.uint8)).save(tmp_path / "imgs" / "dogs" / "odd.png")
    with pytest.raises(DatasetError, match=r"images must share one size and mode; .* but .*odd\.png is 7x9 grey"):
        load_dataset(str(tmp_path / "imgs"))
    assert _caches(tmp_path / "imgs") == []


def test_a_corrupt_image_is_named(tmp_path, grey_images):
    _folder(tmp_path / "imgs", grey_images)
    (tmp_path / "imgs" / "cats" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match=r"bad\.png: not an image"):
        load_dataset(str(tmp_path / "imgs"))
