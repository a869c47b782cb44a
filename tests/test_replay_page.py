"""The Training replay page under AppTest: the scrubber shows epoch k's numbers and starts the
animation there; a missing, corrupt or foreign replay gives one message, never an exception."""

from __future__ import annotations

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


def _player(at) -> dict:
    """The replay player's data in the last run: its header, the raw arrays under "_blobs"."""
    from tests.test_app import _component_data

    return _component_data(at, "vae_replay_player")


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
    first = _player(at)
    assert first["index"] == 0 and first["replay"]["epochs"] == r.epochs.tolist()
    assert set(first["_blobs"]) == {"xy", "labels", "index", "kl_per_dim", "sheet"}
    at.select_slider(key="replay_epoch").set_value(37).run()
    i = list(r.epochs).index(37)
    m = _metrics(at)
    assert m["Test ELBO, epoch 37"] == f"{r.elbo[i]:.2f}" and m["KL(q ‖ p)"] == f"{r.kl[i]:.2f}"
    assert m["E_q log p(x|z)"] == f"{r.recon_nats[i]:.2f}"
    p = _player(at)
    assert p["index"] == i and "replay" not in p and not p["_blobs"]  # the arrays went once, on the first run
    assert "Its final test ELBO is" in at.info[0].value  # the shipped replay is a labelled re-run


def test_recorded_replay_page(tiny, monkeypatch):
    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, os.path.dirname(tiny))
    at = _app(tiny)
    assert at.caption[0].value == "Recorded while this checkpoint trained."
    assert [c["label"] for c in _player(at)["replay"]["classes"]] == [0, 1, 2, 3]
    at.select_slider(key="replay_epoch").set_value(3).run()
    r = load_replay(replay_path(tiny))
    assert _metrics(at)["Test ELBO, epoch 3"] == f"{r.elbo[2]:.2f}" and _player(at)["index"] == 2


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


def test_the_scrubber_follows_where_the_player_stopped_and_lost_data_is_sent_again():
    """The player's `epoch_at` trigger (Pause, the last snapshot, its slider released, a click on its
    ELBO chart) moves the page's scrubber and numbers there, and sends no arrays again; its `need_data`
    trigger (a tab that lost them) has the next run send them."""
    path = default_checkpoint_path()
    r = load_replay(replay_path(path))

    def script(model: str) -> None:
        import os

        import streamlit as st

        from app.components import replay_player as rp
        from app.views import replay
        from vae_core.replay import replay_path

        st.session_state.setdefault("sidebar_model_path", model)
        st.set_page_config(layout="wide")
        event = st.session_state.pop("event", None)
        if event is not None:  # what the browser's trigger does before the run: the callback
            st.session_state["replay_player"] = dict([event])
            if event[0] == "epoch_at":
                replay._follow_player(
                    [int(e) for e in replay._load(replay_path(model), os.path.getmtime(replay_path(model))).epochs]
                )
            else:
                rp.forget_sent("replay_player__sent")
            del st.session_state["replay_player"]
        replay.render()

    at = AppTest.from_function(script, args=(path,), default_timeout=TIMEOUT)
    at.run()
    assert "replay" in _player(at)
    at.session_state["event"] = ("epoch_at", 41)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    e = int(r.epochs[41])
    assert (
        at.select_slider(key="replay_epoch").value == e and _metrics(at)[f"Test ELBO, epoch {e}"] == f"{r.elbo[41]:.2f}"
    )
    p = _player(at)
    assert p["index"] == 41 and "replay" not in p
    at.session_state["event"] = ("epoch_at", 10_000)  # out of range: ignored
    at.run()
    assert at.select_slider(key="replay_epoch").value == e
    at.session_state["event"] = ("need_data", "x")
    at.run()
    assert _player(at)["replay"]["epochs"] == r.epochs.tolist() and _player(at)["_blobs"]


def test_warm_builds_the_player_data_the_page_then_reads(monkeypatch):
    """app/main.py's background thread calls replay.warm(open model): the page's next _built is a cache hit."""
    from unittest import mock

    from app.components import replay_player
    from app.views import replay

    path = default_checkpoint_path()
    rpath = replay_path(path)
    replay._built.clear()
    replay.warm(path)
    with mock.patch.object(replay_player, "snapshot_sheet", side_effect=AssertionError("built again")):
        data = replay._built(rpath, os.path.getmtime(rpath), (1, 28, 28))
    assert data.header["epochs"] == load_replay(rpath).epochs.tolist() and data.blobs["sheet"].startswith(b"\x89PNG")
    replay.warm(str(os.path.join(os.path.dirname(rpath), "no-such-model.safetensors")))  # no replay: nothing
