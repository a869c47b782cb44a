"""The Training replay page under AppTest: the scrubber shows epoch k's numbers and starts the
animation there; a missing, corrupt or foreign replay gives one message, never an exception."""

from __future__ import annotations

import base64
import json
import os
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache_mod
from vae_core.cache import default_checkpoint_path
from vae_core.cli import main
from vae_core.replay import load_replay, replay_path

TIMEOUT = 600  # a hang guard per AppTest run


def _app(model_path: str) -> AppTest:
    script = (
        f"import streamlit as st\nfrom app.views import replay\n"
        f"st.session_state.setdefault('sidebar_model_path', {model_path!r})\n"
        f"st.set_page_config(layout='wide')\nreplay.render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def _values(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)}."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
    return np.asarray(v)


def _figure(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_npz_module):
    """A 4-epoch model trained by the CLI with --replay, in its own cache folder."""
    cache = tmp_path_factory.mktemp("replay_ckpts")
    args = [
        "train",
        "--dataset",
        tiny_npz_module,
        "--latent-dim",
        "2",
        "--hidden",
        "16",
        "--epochs",
        "4",
        "--batch-size",
        "32",
        "--final-iw-samples",
        "5",
        "--device",
        "cpu",
        "--cache-dir",
        str(cache),
        "--quiet",
        "--replay",
    ]
    assert main(args) == 0
    (path,) = [str(cache / f) for f in os.listdir(cache) if f.endswith(".safetensors")]
    return path


@pytest.fixture(scope="module")
def tiny_npz_module(tmp_path_factory):
    from tests.conftest import grey_images

    x, y = grey_images(128), np.arange(128) % 4
    path = tmp_path_factory.mktemp("npz") / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return str(path)


def test_scrubber_shows_epoch_k_on_the_shipped_model():
    path = default_checkpoint_path()
    r = load_replay(replay_path(path))
    at = _app(path)
    assert _metrics(at)["Test ELBO, epoch 1"] == f"{r.elbo[0]:.2f}"
    at.select_slider(key="replay_epoch").set_value(37).run()
    i = list(r.epochs).index(37)
    m = _metrics(at)
    assert m["Test ELBO, epoch 37"] == f"{r.elbo[i]:.2f}" and m["KL(q ‖ p)"] == f"{r.kl[i]:.2f}"
    assert m["E_q log p(x|z)"] == f"{r.recon_nats[i]:.2f}"
    fig = _figure(at)
    assert fig["layout"]["sliders"][0]["active"] == i and len(fig["frames"]) == len(r.epochs)
    kl_bars = next(t for t in fig["data"] if t["type"] == "bar")
    np.testing.assert_allclose(_values(kl_bars["y"]), np.maximum(r.kl_per_dim[i], 1e-4), rtol=1e-6)
    assert "Its final test ELBO is" in at.info[0].value  # the shipped replay is a labelled re-run


def test_recorded_replay_page(tiny, monkeypatch):
    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, os.path.dirname(tiny))
    at = _app(tiny)
    assert at.caption[0].value == "Recorded while this checkpoint trained."
    at.select_slider(key="replay_epoch").set_value(3).run()
    r = load_replay(replay_path(tiny))
    assert _metrics(at)["Test ELBO, epoch 3"] == f"{r.elbo[2]:.2f}"
    assert [t["name"] for t in _figure(at)["data"][:4]] == [f"label {k}" for k in range(4)]


@pytest.mark.parametrize("damage", ["missing", "garbage", "foreign", "replaced"])
def test_bad_replays_give_one_message(tiny, tmp_path, monkeypatch, damage):
    folder = tmp_path / "c"
    folder.mkdir()
    ckpt = shutil.copy(tiny, folder)
    rp = replay_path(ckpt)
    if damage == "garbage":
        (folder / os.path.basename(rp)).write_bytes(b"PK\x03\x04 truncated")
    elif damage in ("foreign", "replaced"):
        with np.load(replay_path(tiny), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays["meta"]))
        if damage == "foreign":
            meta["train_config"]["beta"] = 4.0
        else:
            meta["checkpoint_sha256"] = "0" * 64
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(rp, **arrays)
    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, str(folder))
    at = _app(ckpt)
    if damage == "missing":
        assert len(at.info) == 1 and "has no training replay" in at.info[0].value and not at.metric
    elif damage == "replaced":  # still shown, with a warning
        assert len(at.main.warning) == 1 and "another file with the same configuration" in at.main.warning[0].value
        assert at.metric
    else:
        assert len(at.error) == 1 and not at.metric
        assert ("cannot be shown" if damage == "garbage" else "different model configuration") in at.error[0].value


def test_the_lab_beta_10_replay_is_offered_and_shows_collapse():
    at = _app(default_checkpoint_path())
    box = at.selectbox(key="replay_source")
    assert box.options[0] == "The open model (sidebar)"
    (i,) = [i for i, o in enumerate(box.options) if "β = 10," in o and "warm-up" not in o and "free bits" not in o]
    box.select_index(i).run()
    assert not at.exception
    from vae_core.cache import default_cache_dir
    from vae_core.replay import with_replays

    (r,) = [
        r
        for r in map(load_replay, map(replay_path, with_replays(os.path.join(default_cache_dir(), "lab"))))
        if r.meta["train_config"]["beta"] == 10.0
        and not r.meta["train_config"]["warmup_epochs"]
        and not r.meta["train_config"]["free_bits"]
    ]
    at.select_slider(key="replay_epoch").set_value(int(r.epochs[-1])).run()
    alive = int((r.kl_per_dim[-1] >= 0.01).sum())
    assert _metrics(at)["Dims alive"] == f"{alive} of 16" and alive < 16  # dimensions collapsed as it trained
    assert _metrics(at)[f"Test ELBO, epoch {r.epochs[-1]}"] == f"{r.elbo[-1]:.2f}"


def test_the_replay_spec_is_valid_plotly_at_every_epoch():
    """The prebuilt spec (plain lists, sent unvalidated) is a figure plotly accepts, and drawn at snapshot i
    its animated traces hold frame i's data: what the browser shows before Play equals frame i."""
    import plotly.graph_objects as go

    from app.views import replay

    path = default_checkpoint_path()
    rpath = replay_path(path)
    r = load_replay(rpath)
    spec, sheet = replay._built.__wrapped__(rpath, os.path.getmtime(rpath), (1, 28, 28))
    assert [f["name"] for f in spec["frames"]] == [str(e) for e in r.epochs]
    go.Figure(spec)  # raises on any property plotly does not know, in the traces, layout and every frame
    labels = len(set(r.labels.tolist()))
    for i in (0, 37, len(r.epochs) - 1):
        at = replay._at(spec, sheet, "/media/x.png", i)
        go.Figure(at)
        frame = at["frames"][i]
        for t, d in zip(frame["traces"], frame["data"]):
            assert all(at["data"][t][k] == v for k, v in d.items())
        assert at["layout"]["sliders"][0]["active"] == i and at["layout"]["images"] == frame["layout"]["images"]
        xy = np.concatenate([np.c_[at["data"][j]["x"], at["data"][j]["y"]] for j in range(labels)])
        np.testing.assert_allclose(np.sort(xy, axis=0), np.sort(r.xy[i], axis=0), atol=6e-4)
    assert spec["layout"]["sliders"][0]["active"] == 0 and "images" not in spec["layout"]  # cache unchanged


def test_each_frame_shows_its_own_snapshot_from_the_sheet():
    """Frame k places the sheet so that the image subplot's unit square, [0, 1]², holds exactly tile k, and
    tile k is snapshot k's mosaic."""
    import io

    from PIL import Image

    from app.views import replay
    from vae_core.replay import epoch_mosaic

    rpath = replay_path(default_checkpoint_path())
    r = load_replay(rpath)
    spec, sheet = replay._built.__wrapped__(rpath, os.path.getmtime(rpath), (1, 28, 28))
    png = np.asarray(Image.open(io.BytesIO(sheet.png)))
    th, tw = epoch_mosaic(r, 0, (1, 28, 28)).shape
    assert (sheet.tile_h, sheet.tile_w) == (th, tw) and sheet.cols * sheet.rows >= len(r.epochs)
    frames = replay._at(spec, sheet, "/media/x.png", 0)["frames"]
    for k in (0, 1, 11, len(r.epochs) - 1):
        img = frames[k]["layout"]["images"][0]
        assert (img["xref"], img["yref"], img["sizing"]) == ("x2", "y2", "stretch")
        # the sheet spans [x, x + sizex] and [y - sizey, y] in data units, one unit per tile_w (tile_h) px
        assert np.isclose(png.shape[1] / img["sizex"], tw) and np.isclose(png.shape[0] / img["sizey"], th)
        row, col = divmod(k, sheet.cols)
        left, top = col * (tw + 1), row * (th + 1)  # tile k's pixels in the sheet
        assert np.isclose(img["x"] + left / tw, 0) and np.isclose(img["y"] - top / th, 1)
        want = np.round(epoch_mosaic(r, k, (1, 28, 28)) * 255)
        np.testing.assert_allclose(png[top : top + th, left : left + tw], want, atol=1)
    axes = spec["layout"]["xaxis2"], spec["layout"]["yaxis2"]
    assert [a["range"] for a in axes] == [[0, 1], [0, 1]] and axes[1]["scaleratio"] == th / tw


def test_warm_builds_the_figure_the_page_then_reads(monkeypatch):
    """app/main.py's background thread calls replay.warm(open model): the page's next _built is a cache hit."""
    from unittest import mock

    from app.views import replay

    path = default_checkpoint_path()
    rpath = replay_path(path)
    replay._built.clear()
    replay.warm(path)
    with mock.patch.object(replay, "_sheet", side_effect=AssertionError("built again")):
        spec, sheet = replay._built(rpath, os.path.getmtime(rpath), (1, 28, 28))
    assert len(spec["frames"]) == len(load_replay(rpath).epochs) and sheet.png.startswith(b"\x89PNG")
    replay.warm(str(os.path.join(os.path.dirname(rpath), "no-such-model.safetensors")))  # no replay: nothing
