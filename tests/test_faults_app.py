"""Fault injection, app side (AppTest): bad checkpoints in the cache, data paths a browser user types,
user strings shown as text, and the last-resort guard around every page.

Each test asserts what the user sees: an st.error naming the problem, the rest of the page working,
and never an exception in the page.
"""

from __future__ import annotations

import os

import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.safe import guarded, plain
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import VAE

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit (loaded 2-core machines)
# Sound headers whose weights fail only when loaded (NaN values; "{}" is a valid all-defaults config
# that does not match the stored tensors): listed normally, refused with one error when opened.
HEADER_OK = {"nan_weights.safetensors", "model_config_empty.safetensors"}


def _text(element) -> str:
    """What the browser shows for a Markdown element: its value without the backslash escapes."""
    import re

    return re.sub(r"\\(.)", r"\1", element.value)


# --- plain(): user strings as text --------------------------------------------------------------


@pytest.mark.parametrize(
    "s",
    [
        "md[click me](javascript:alert(1))",
        "**bold** _it_ `code`",
        "$x^2$",
        ":red[alarm] :material/home:",
        "www.example.org",
        "# heading",
        "<b>x</b>",
        r"back\slash",
        "a|b|c",
        "![img](http://127.0.0.1/x.png)",
    ],
)
def test_plain_escapes_every_markdown_character(s):
    out = plain(s)
    # every ASCII punctuation character is escaped, so Markdown sees only literal characters ...
    assert all(
        out[i - 1] == "\\"
        for i, ch in enumerate(out)
        if ch in "[]()*_`$:<>#|!" and (i == 0 or out[i - 1] != "\\" or (i >= 2 and out[i - 2] == "\\"))
    )
    # ... and removing the escapes gives back exactly what the user typed
    import re

    assert re.sub(r"\\(.)", r"\1", out) == s


def test_plain_keeps_letters_digits_and_unicode():
    assert plain("mnist 5k · β=1 ñ") == r"mnist 5k · β\=1 ñ"


# --- guarded(): no traceback from a page ----------------------------------------------------------


def _failing_page():
    from app.safe import guarded

    def render():
        import streamlit as st

        st.write("before the failure")
        raise KeyError("/srv/secret/path.npz")

    guarded(render, "test.page")()


def test_an_unexpected_exception_becomes_one_error_line():
    at = AppTest.from_function(_failing_page, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert len(at.error) == 1
    msg = _text(at.error[0])
    assert "unexpected problem" in msg and "KeyError" in msg
    assert "Traceback" not in msg
    assert at.markdown[0].value == "before the failure"  # what rendered before stays


def test_guarded_lets_streamlit_control_flow_through():
    def render():
        raise SystemExit  # a BaseException: not swallowed

    with pytest.raises(SystemExit):
        guarded(render, "x")()


# --- bad checkpoints in the cache ---------------------------------------------------------------


def _good(folder, name="good", dataset="digits", **tcfg) -> str:
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)))
    return save_checkpoint(
        os.path.join(folder, f"{name}.safetensors"),
        model,
        TrainConfig(dataset=dataset, epochs=1, binarize="dynamic", **tcfg),
        dataset={"name": dataset, "fingerprint": "0" * 16, "n_train": 1, "n_test": 1, "input_shape": [1, 8, 8]},
        metrics={"elbo": -40.0, "recon": -30.0, "kl": 10.0},
    )


@pytest.fixture
def bad_cache(tmp_path, monkeypatch, bad_checkpoints):
    """A cache with one good checkpoint and one bad file of every kind."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    good = _good(str(folder))
    names = bad_checkpoints(str(folder), good)
    _good(str(folder), name="md[click me](javascript:alert(1))")
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    return folder, good, names


def _page(module: str, model_path: str | None):
    import streamlit as st

    from app.safe import guarded

    if model_path:
        st.session_state.setdefault("sidebar_model_path", model_path)
    from importlib import import_module

    guarded(import_module(module).render, module)()


def _run_page(module: str, model_path: str | None = None) -> AppTest:
    return AppTest.from_function(_page, args=(module, model_path), default_timeout=TIMEOUT).run()


def test_the_picker_lists_the_good_and_marks_every_bad_file(bad_cache):
    folder, good, names = bad_cache
    at = _run_page("app.views.elbo", good)
    assert not at.exception and not at.error
    labels = at.selectbox[0].options  # the formatted labels the browser shows
    bad = [lab for lab in labels if lab.startswith("⚠")]
    unreadable = [n for n in names if n not in HEADER_OK]
    assert len(bad) == len(unreadable)
    for name in unreadable:
        assert any(name in lab and "unreadable:" in lab for lab in bad), name
    assert sum(not lab.startswith("⚠") for lab in labels) == 2 + len(HEADER_OK)  # + good, the Markdown-named one


@pytest.mark.parametrize(
    "bad",
    [
        "nan_weights.safetensors",
        "model_config_empty.safetensors",
        "hidden_huge.safetensors",
        "truncated.safetensors",
        "elbo_text.safetensors",
    ],
)
@pytest.mark.parametrize("module", ["app.views.explorer", "app.views.elbo", "app.views.traversal", "app.views.upload"])
def test_opening_a_bad_checkpoint_shows_an_error_and_the_page_survives(bad_cache, module, bad):
    folder, _, _ = bad_cache
    at = _run_page(module, str(folder / bad))
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    assert "Cannot open this checkpoint" in _text(at.error[0])
    assert bad in _text(at.error[0])  # names the file
    assert at.title  # the page itself rendered


def test_a_markdown_file_name_is_shown_as_text(bad_cache):
    folder, _, _ = bad_cache
    path = str(folder / "md[click me](javascript:alert(1)).safetensors")
    at = _run_page("app.views.elbo", path)
    assert not at.exception and not at.error
    label = at.selectbox[0].options[at.selectbox[0].index]
    assert label.startswith("md[click me](javascript:alert(1))")  # options are plain text


# --- paths a browser user can make the server read ------------------------------------------------


def test_a_stored_dataset_path_outside_the_roots_is_not_followed(tmp_path, monkeypatch):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    path = _good(str(folder), name="foreign", dataset=str(secret))
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    monkeypatch.delenv("VAE_DATA_ROOTS", raising=False)
    at = _run_page("app.views.elbo", path)
    assert not at.exception
    assert len(at.error) == 1
    assert "not available" in _text(at.error[0]) and "outside" in _text(at.error[0])


def _train_page(roots: str | None, monkeypatch, tmp_path) -> AppTest:
    folder = tmp_path / "ckpts"
    folder.mkdir(exist_ok=True)
    _good(str(folder))
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    monkeypatch.setenv("VAE_UPLOAD_DIR", str(tmp_path / "uploads"))
    if roots is None:
        monkeypatch.delenv("VAE_DATA_ROOTS", raising=False)
    else:
        monkeypatch.setenv("VAE_DATA_ROOTS", roots)
    return _run_page("app.views.train")


def test_without_data_roots_the_train_page_offers_no_server_paths(monkeypatch, tmp_path):
    at = _train_page(None, monkeypatch, tmp_path)
    assert not at.exception
    options = at.selectbox(key="train_dataset").options
    assert "mnist-5k" in options and any(o.startswith("upload") for o in options)
    assert not any("on the server" in o for o in options)
    assert not [t for t in at.text_input if t.key == "train_path"]


def test_upload_chosen_without_a_file_says_so(monkeypatch, tmp_path):
    at = _train_page(None, monkeypatch, tmp_path)
    at.selectbox(key="train_dataset").select(
        next(o for o in at.selectbox(key="train_dataset").options if o.startswith("upload"))
    )
    at.button[0].click().run()
    assert not at.exception
    assert "choose a .npz or .zip file" in _text(at.error[0])


def _try_path(at: AppTest, path: str) -> AppTest:
    sb = at.selectbox(key="train_dataset")
    sb.select(next(o for o in sb.options if "on the server" in o))
    at.text_input(key="train_path").input(path)
    at.button[0].click().run()
    return at


@pytest.mark.parametrize(
    "attempt",
    ["/etc", "/etc/passwd.npz", "{allowed}/../secret", "{allowed}/link_out", "{allowed}/../secret/data.npz", "~/.ssh"],
)
def test_paths_outside_the_data_roots_are_refused(monkeypatch, tmp_path, attempt):
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (allowed / "link_out").symlink_to(secret, target_is_directory=True)
    at = _train_page(str(allowed), monkeypatch, tmp_path)
    at = _try_path(at, attempt.format(allowed=allowed))
    assert not at.exception
    assert len(at.error) == 1, [e.value for e in at.error]
    msg = _text(at.error[0])
    assert "Cannot train this" in msg and "outside" in msg
    assert "train_job" not in at.session_state  # nothing started


def test_a_path_inside_the_roots_is_loaded(monkeypatch, tmp_path, tiny_npz):
    allowed = os.path.dirname(tiny_npz)
    at = _train_page(allowed, monkeypatch, tmp_path)
    at = _try_path(at, os.path.join(allowed, "..", os.path.basename(allowed), os.path.basename(tiny_npz)))
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["train_job"].endswith(".safetensors")  # the job started


def test_out_of_range_data_is_refused_before_training(monkeypatch, tmp_path):
    import numpy as np

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    x = np.random.default_rng(0).integers(0, 6, size=(40, 8, 8)).astype(np.int64)  # values 0..5
    np.savez(allowed / "counts.npz", x_train=x[:30], x_test=x[30:])
    at = _train_page(str(allowed), monkeypatch, tmp_path)
    at = _try_path(at, str(allowed / "counts.npz"))  # bernoulli is the default likelihood
    assert not at.exception
    assert len(at.error) == 1 and "[0, 1]" in _text(at.error[0])
    assert "train_job" not in at.session_state


def test_training_can_be_switched_off(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_ALLOW_TRAINING", "0")
    at = _train_page(None, monkeypatch, tmp_path)
    assert not at.exception
    assert "switched off" in _text(at.info[0])
    assert not at.button  # no form


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "garbage"])
def test_a_bad_map_cache_is_reported_once_and_rebuilt(bad_cache, damage):
    from vae_core.projection_build import build_cache
    from vae_core.projection_cache import cache_path_for, cache_problem, read_cache

    folder, good, _ = bad_cache
    _run_page("app.views.explorer", good)  # writes nothing yet: a fresh checkpoint has no cache
    cache = cache_path_for(good)
    build_cache(
        good,
        __import__("vae_core.checkpoints").checkpoints.load_checkpoint(good).model,
        torch.rand(20, 1, 8, 8),
        None,
        with_umap=False,
    )
    blob = bytearray(open(cache, "rb").read())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "bitflip":
        blob[len(blob) // 2] ^= 0xFF
    else:
        blob = bytearray(b"PK\x03\x04" + b"\x00" * 64)
    open(cache, "wb").write(bytes(blob))
    at = _run_page("app.views.explorer", good)
    assert not at.exception and not at.error
    assert any("proj.npz" in _text(w) and "rebuilt" in _text(w) for w in at.warning)
    assert read_cache(good) is not None  # rebuilt: readable again
    assert cache_problem(good) is None


# --- dataset uploads through the browser (Train page) ----------------------------------------------


def _zip(entries: dict) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            # a fixed time stamp: the bytes name the test (its parameter), and pytest-xdist's workers, which
            # collect at different seconds, must collect the same tests
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _npz_bytes(x, **extra) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x_train=x[:30], x_test=x[30:], **extra)
    return buf.getvalue()


def _upload(monkeypatch, tmp_path, name: str, data: bytes) -> AppTest:
    at = _train_page(None, monkeypatch, tmp_path)
    sb = at.selectbox(key="train_dataset")
    sb.select(next(o for o in sb.options if o.startswith("upload")))
    at.file_uploader(key="train_upload").set_value((name, data, "application/octet-stream"))
    at.button[0].click().run()
    return at


def test_a_good_npz_upload_is_stored_and_trained_on(monkeypatch, tmp_path, grey_images):
    at = _upload(monkeypatch, tmp_path, "my digits.npz", _npz_bytes(grey_images(40)))
    assert not at.exception
    assert not at.error, [_text(e) for e in at.error]
    stored = os.listdir(tmp_path / "uploads")
    assert len(stored) == 1 and stored[0].endswith(".npz")  # content-addressed, under the upload dir
    assert at.session_state["train_job"].endswith(".safetensors")


@pytest.mark.parametrize(
    "name,data,problem",
    [
        ("slip.zip", _zip({"../../evil/a.png": b"x"}), ".."),
        ("abs.zip", _zip({"/etc/a.png": b"x"}), "absolute"),
        ("pickle.npz", b"\x80\x04\x95" + b"\x00" * 40, "not a readable zip"),
        ("empty.npz", b"", "empty"),
    ],
    ids=["slip.zip", "abs.zip", "pickle.npz", "empty.npz"],
)
def test_a_bad_upload_is_refused_naming_it(monkeypatch, tmp_path, name, data, problem):
    at = _upload(monkeypatch, tmp_path, name, data)
    assert not at.exception
    assert len(at.error) == 1
    msg = _text(at.error[0])
    assert name in msg and problem in msg, msg
    assert str(tmp_path) not in msg  # never a server path
    assert "train_job" not in at.session_state
    assert not os.path.exists(tmp_path / "uploads") or not [
        f for f in os.listdir(tmp_path / "uploads") if not f.startswith(".")
    ]


# --- images through the pages -----------------------------------------------------------------------


def _forged_bomb() -> bytes:
    """74 bytes: a PNG whose IHDR (CRC correct) declares 100000 x 100000 grey pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name,data,problem",
    [
        ("bomb.png", _forged_bomb(), "pixels"),
        ("half.png", None, "corrupt or truncated"),
        ("notes.png", b"just some text", "not an image"),
    ],
)
def test_a_bad_image_on_the_upload_page_gives_one_error(bad_cache, name, data, problem):
    import io

    import numpy as np
    from PIL import Image

    if data is None:  # a real PNG cut in half
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "PNG")
        data = buf.getvalue()[: len(buf.getvalue()) // 2]
    _, good, _ = bad_cache
    at = _run_page("app.views.upload", good)
    at.file_uploader(key="upload_file").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1
    msg = _text(at.error[0])
    assert msg.startswith("Cannot use this image") and name in msg and problem in msg, msg
    assert at.radio(key="upload_invert")  # the rest of the page is still there


def test_a_bad_file_in_an_image_folder_is_named_on_the_train_page(monkeypatch, tmp_path, grey_images):
    import io

    from PIL import Image

    allowed = tmp_path / "allowed"
    for c, cls in enumerate(["a", "b"]):
        (allowed / "set" / cls).mkdir(parents=True)
        for i, a in enumerate(grey_images(6, seed=c)):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "PNG")
            (allowed / "set" / cls / f"{i}.png").write_bytes(buf.getvalue())
    (allowed / "set" / "b" / "broken.png").write_bytes(b"")
    at = _train_page(str(allowed), monkeypatch, tmp_path)
    at = _try_path(at, str(allowed / "set"))
    assert not at.exception
    assert len(at.error) == 1
    msg = _text(at.error[0])
    assert "broken.png" in msg and "empty" in msg, msg
    assert "train_job" not in at.session_state
