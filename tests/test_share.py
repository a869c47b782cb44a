"""Shareable state: the link (?model=&z=), the z.json round trip, and the Upload page's "Open in
explorer" (app/z_share.py, app/url_state.py, app/views/explorer_z.py).

The AppTests run the whole app (app/main.py) on a temporary checkpoint folder of two tiny MLPs on
the embedded `digits` set ($VAE_CHECKPOINT_DIR), with the query parameters a link would carry.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.url_state import URL_PACE_S, url_due
from app.z_share import ShareError, link_query, parse_z, read_z_json, resolve_model, z_json, z_param
from vae_core.cache import train_or_load
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit
MAIN = os.path.join(os.path.dirname(__file__), "..", "app", "main.py")
ROWS = [{"path": "/srv/ckpts/a_z3.safetensors"}, {"path": "/srv/ckpts/b_z2.safetensors"}]


# --- the pure parts -----------------------------------------------------------------------------


def test_a_model_is_found_by_file_name_only():
    assert resolve_model("a_z3.safetensors", ROWS) == ROWS[0]["path"]
    assert resolve_model("b_z2", ROWS) == ROWS[1]["path"]  # without the extension
    for bad in (
        "../../etc/passwd",
        "/etc/passwd",
        "/srv/ckpts/a_z3.safetensors",
        "..\\a_z3.safetensors",
        ".a_z3.safetensors",
        "nope.safetensors",
        "",
        "a_z3\x00.safetensors",
    ):
        with pytest.raises(ShareError, match="model"):
            resolve_model(bad, ROWS)


def test_z_parameter_parses_and_pads_or_names_its_problem():
    assert parse_z("0.5,-1.25, 2", 3) == [0.5, -1.25, 2.0]
    assert parse_z("1.5", 3) == [1.5, 0.0, 0.0]  # fewer values: the rest at the prior's mean
    for bad, why in (
        ("", "empty"),
        ("1,2,3,4", "4 values"),
        ("1,abc", "value 2 is not a number"),
        ("nan", "not finite"),
        ("1e999", "not finite"),
        ("1,,2", "value 2"),
        ("1" * 40, "value 1 is not a number"),
    ):
        with pytest.raises(ShareError, match="z parameter") as e:
            parse_z(bad, 3)
        assert why in str(e.value)


def test_z_param_round_trips_at_four_decimals():
    z = [0.123456, -2.5, 0.0, -0.00001, 3.0]
    assert z_param(z) == "0.1235,-2.5,0,0,3"
    np.testing.assert_allclose(parse_z(z_param(z), 5), z, atol=5e-5)
    assert link_query("/srv/ckpts/a_z3.safetensors", [1, 0]) == {"model": "a_z3.safetensors", "z": "1,0"}


def test_z_json_round_trips_and_each_bad_file_has_its_message():
    z = [0.1234567891, -2.0, 1e-7]
    assert read_z_json(z_json("/srv/ckpts/a_z3.safetensors", z).encode()) == ("a_z3.safetensors", z)
    assert read_z_json(b'{"z": [1, 2]}') == (None, [1.0, 2.0])
    assert read_z_json(b'{"checkpoint": "/old/server/path/a_z3.safetensors", "z": [1]}')[0] == "a_z3.safetensors"
    for data, why in (
        (b"\x89PNG not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"zz": [1]}', "no list z"),
        (b'{"z": [1, NaN]}', "finite"),
        (b'{"z": [1, Infinity]}', "finite"),
        (b'{"z": [1, "2"]}', "finite"),
        (b'{"z": [true]}', "finite"),
        (b'{"z": [1], "checkpoint": 5}', "checkpoint"),
        (b'{"z": [' + b"1," * 40_000 + b"1]}", "at most"),
    ):
        with pytest.raises(ShareError) as e:
            read_z_json(data)
        assert why in str(e.value)


def test_a_dragged_z_reaches_the_url_at_most_every_pace_interval():
    assert url_due(None, 1, 0.0, paced=True)  # the first write
    assert url_due((1, 10.0), 2, 10.1, paced=True)  # a set (new rev): at once
    assert not url_due((1, 10.0), 1, 10.1, paced=True)  # a server-decoded drag preview: later
    assert url_due((1, 10.0), 1, 10.0 + URL_PACE_S, paced=True)
    assert url_due((1, 10.0), 1, 10.1, paced=False)  # a release decoded in the browser: at once


# --- the app ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two tiny digits MLPs: latent dims 3 and 2."""
    d = tmp_path_factory.mktemp("share_ckpts")
    data = load_dataset("digits")
    for k in (3, 2):
        train_or_load(
            ModelConfig(input_shape=data.input_shape, latent_dim=k, hidden=(16,)),
            TrainConfig(dataset="digits", epochs=1, binarize="dynamic", seed=0),
            data,
            cache_dir=str(d),
            final_iw_samples=2,
        )
    return str(d)


@pytest.fixture
def ckpts(folder, monkeypatch):
    """{latent_dim: path} of the folder, which is the app's checkpoint folder."""
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", folder)
    return {
        int(f.split("_z")[1].split("_")[0]): os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.endswith(".safetensors")
    }


def _open(query: dict) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _z(at: AppTest) -> list[float]:
    return at.session_state["explorer_z"].z


def _warnings(at: AppTest) -> list[str]:
    return [w.value.replace("\\", "") for w in at.main.warning]  # plain() escapes punctuation


def test_a_link_opens_its_model_with_its_z(ckpts):
    name = os.path.basename(ckpts[2])
    at = _open({"model": name, "z": "1.5,-0.25"})
    assert at.session_state["sidebar_model_path"] == ckpts[2]
    assert at.sidebar.selectbox(key="sidebar_model_select").value == ckpts[2]
    assert _z(at) == [1.5, -0.25]
    assert any(c.value == "Sliders: from the link" for c in at.caption)
    assert not _warnings(at)
    assert at.query_params == {"model": name, "z": "1.5,-0.25"}  # the URL already carries this view
    assert any(f"model={name}&z=1.5%2C-0.25" in c.value for c in at.code)  # the Copy link
    at.button(key="explorer_btn_zero").click().run()  # a set: the URL follows
    assert at.query_params == {"model": name, "z": "0,0"}


def test_a_link_without_a_model_sets_z_on_the_open_one(ckpts):
    at = _open({"z": "0.5"})
    k = len(_z(at))
    assert _z(at) == [0.5] + [0.0] * (k - 1) and not _warnings(at)


@pytest.mark.parametrize("model", ["../../etc/passwd", "/etc/passwd", "elsewhere.safetensors"])
def test_a_bad_model_gives_one_message_and_the_default_view(ckpts, model):
    at = _open({"model": model, "z": "1,1"})
    (w,) = _warnings(at)
    assert "link's model was not opened" in w and "without the link's z" in w
    assert at.title and not at.error
    assert at.session_state["explorer_z"].origin.startswith("μ of test #")  # the default view
    assert at.query_params["model"] in {os.path.basename(p) for p in ckpts.values()}  # the URL now says which


@pytest.mark.parametrize(
    "z, why", [("1,2,3,4", "4 values"), ("1,nan", "not finite"), ("1;2", "not a number"), ("", "empty")]
)
def test_a_bad_z_gives_one_message_naming_the_parameter(ckpts, z, why):
    at = _open({"model": os.path.basename(ckpts[3]), "z": z})
    (w,) = _warnings(at)
    assert "link's z was not used" in w and "z parameter" in w and why in w
    assert at.session_state["sidebar_model_path"] == ckpts[3]  # the model still opened
    assert len(_z(at)) == 3 and at.session_state["explorer_z"].origin.startswith("μ of test #")
    at.button(key="explorer_btn_zero").click().run()  # the user moves on: the note goes
    assert not _warnings(at)


def _upload_json(at: AppTest, data: bytes) -> AppTest:
    at.file_uploader(key="explorer_z_file").set_value(("z.json", data, "application/json")).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _note(at: AppTest) -> str:
    notes = [
        c.value.replace("\\", "")
        for c in at.caption
        if not c.value.startswith("Sliders:") and ("z.json" in c.value.replace("\\", "") or "saved from" in c.value)
    ]
    assert len(notes) == 1, notes
    return notes[0]


def test_a_downloaded_z_json_loads_back_to_the_same_z(ckpts):
    at = _open({"model": os.path.basename(ckpts[3])})
    at.number_input(key="explorer_index").set_value(7).run()
    saved = list(_z(at))
    box = at.session_state["explorer_download_z"]  # what the download button serves: z_json(path, box["z"])
    assert box["z"] == saved
    data = z_json(ckpts[3], box["z"]).encode()
    at.button(key="explorer_btn_zero").click().run()
    assert _z(at) == [0.0] * 3
    _upload_json(at, data)
    assert _z(at) == saved  # full precision: the same z
    assert at.session_state["explorer_z"].origin == "your z.json"


@pytest.mark.parametrize(
    "data, why",
    [
        (b"not json at all", "not JSON"),
        (b'{"z": [1, 2]}', "2 values; the open model has 3"),
        (b'{"z": [1, NaN, 0]}', "finite"),
        (b'{"z": [' + b"0," * 40_000 + b"0]}", "at most"),
    ],
)
def test_a_bad_z_json_gives_one_message(ckpts, data, why):
    at = _open({"model": os.path.basename(ckpts[3])})
    before = list(_z(at))
    _upload_json(at, data)
    note = _note(at)
    assert note.startswith("Cannot load this z.json") and why in note
    assert _z(at) == before


def test_a_z_json_of_another_model_offers_to_switch(ckpts):
    at = _open({"model": os.path.basename(ckpts[3])})
    _upload_json(at, z_json(ckpts[2], [0.75, -0.5]).encode())
    assert "saved from another model" in _note(at)
    at.button(key="explorer_z_file_switch").click().run()
    assert not at.exception
    assert at.session_state["sidebar_model_path"] == ckpts[2] and _z(at) == [0.75, -0.5]
    _upload_json(at, z_json("/x/gone.safetensors", [0.25, 0.5]).encode())  # not in the folder: said, then loaded
    assert "gone.safetensors" in _note(at) and "not in this server" in _note(at) and _z(at) == [0.25, 0.5]


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((a * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_open_in_explorer_sends_the_uploaded_images_mean(ckpts):
    """Upload page -> button -> the explorer page, its sliders on μ(x) of the image as the model sees it."""

    def script(path):
        import streamlit as st

        from app.views import explorer, upload

        st.session_state.setdefault("sidebar_model_path", path)
        st.navigation(
            [
                st.Page(upload.render, title="Upload", url_path="upload", default=True),
                st.Page(explorer.render, title="Latent explorer", url_path="explorer"),
            ]
        ).run()

    at = AppTest.from_function(script, args=(ckpts[3],), default_timeout=TIMEOUT)
    at.run()
    digit = np.ones((64, 64))
    digit[10:54, 28:36] = 0.0  # a dark "1" on white paper
    at.file_uploader(key="upload_file").set_value(("one.png", _png(digit), "image/png")).run()
    at.button(key="upload_to_explorer").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Latent explorer" in t.value for t in at.title)  # switched page

    from vae_core.checkpoints import load_checkpoint
    from vae_core.data import eval_targets
    from vae_core.images import open_upload, preprocess
    from vae_core.latent import encode_mean

    ck = load_checkpoint(ckpts[3])
    x = preprocess(open_upload(_png(digit), "one.png"), ck.model_config.input_shape, invert="auto", center=True)
    mu = encode_mean(ck.model, eval_targets(x[None], ck.train_config.binarize))[0]
    np.testing.assert_allclose(_z(at), np.clip(mu.numpy(), -3, 3), atol=1e-5)
    assert at.session_state["explorer_z"].origin == "your upload"
