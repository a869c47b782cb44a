"""The explorer pages under streamlit.testing (AppTest runs the script in this process).

Models are tiny, trained here on the embedded `digits` set into a temporary checkpoint cache
($VAE_CHECKPOINT_DIR is set: vae_core.cache.default_cache_dir). UMAP is never started: the pages default to PCA and
the Train page's background UMAP launcher is replaced by a recorder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from vae_core.cache import train_or_load
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import eval_targets, load_dataset

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit (loaded 2-core machines)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A checkpoint cache with tiny models: MLPs on digits with k = 3, 2, 1 and a conv net on 200
    mnist-5k images (k = 4)."""
    d = tmp_path_factory.mktemp("ckpts")
    data = load_dataset("digits")
    torch.set_num_threads(1)
    for k in (3, 2, 1):
        train_or_load(
            ModelConfig(input_shape=data.input_shape, latent_dim=k, hidden=(32,)),
            TrainConfig(dataset="digits", epochs=2, binarize="dynamic", seed=0),
            data,
            cache_dir=str(d),
            final_iw_samples=5,
        )
    mnist = load_dataset("mnist-5k")
    train_or_load(
        ModelConfig(input_shape=mnist.input_shape, latent_dim=4, arch="conv", hidden=(32,), conv_channels=(4, 8)),
        TrainConfig(dataset="mnist-5k", epochs=1, max_train=200, seed=0, binarize="dynamic"),
        mnist,
        cache_dir=str(d),
        final_iw_samples=5,
    )
    return str(d)


@pytest.fixture
def use_cache(cache_dir, monkeypatch):
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", cache_dir)
    return cache_dir


def _ckpt_path(cache_dir: str, k) -> str:
    """The digits MLP with latent dim k, or the conv model for k = 'conv'."""
    want = "_conv_" if k == "conv" else f"digits_mlp_elbo_z{k}_"
    return next(
        os.path.join(cache_dir, f) for f in sorted(os.listdir(cache_dir)) if want in f and f.endswith(".safetensors")
    )


def _page_script(module: str, model_path: str | None) -> str:
    pick = f"st.session_state.setdefault('sidebar_model_path', {model_path!r})\n" if model_path else ""
    return (
        f"import streamlit as st\nfrom app.views import {module}\n{pick}"
        f"st.set_page_config(layout='wide')\n{module}.render()\n"
    )


def _app(module: str, model_path: str | None = None) -> AppTest:
    at = AppTest.from_string(_page_script(module, model_path), default_timeout=TIMEOUT)
    at.run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _targets_and_model(path: str):
    from vae_core.checkpoints import load_checkpoint

    ck = load_checkpoint(path)
    data = load_dataset(ck.train_config.dataset, test_fraction=ck.train_config.test_fraction)
    return eval_targets(data.x_test, ck.train_config.binarize), ck.model


def _unpack(blob: bytes) -> dict:
    """app.components.latent_map.pack_data's bytes -> its header, with the raw arrays under "_blobs"."""
    n = int.from_bytes(blob[:4], "little")
    header = json.loads(blob[4 : 4 + n])
    base = -(-(4 + n) // 8) * 8
    header["_blobs"] = {k: blob[base + off : base + off + size] for k, (off, size) in header["blobs"].items()}
    return header


def _component_data(at: AppTest, name: str) -> dict:
    """The data a st.components.v2 component was mounted with in the last run."""
    for el in at.get("bidi_component"):
        if el.proto.component_name == name and el.proto.WhichOneof("data") == "bytes":
            return _unpack(el.proto.bytes)
        if el.proto.component_name == name:
            data = json.loads(el.proto.json)
            return json.loads(data["json"]) if set(data) == {"json"} else data  # sent as one JSON string
    raise AssertionError(f"no {name} component on the page")


def _server_decoded(at: AppTest) -> tuple[list, np.ndarray]:
    """z and the image (H, W, C) uint8 the decoder component was given in server mode."""
    data = _component_data(at, "vae_latent_decoder")
    img = data["image"]  # server mode: the pixels come with the data, no st.image
    raw = np.frombuffer(base64.b64decode(img["pixels"]), np.uint8)
    return data["z"], raw.reshape(img["height"], img["width"], img["channels"])


def _pytorch_image(path: str, z) -> np.ndarray:
    """E[x|z] decoded here, (H, W, C) in 0..255 (a flat MLP output shown as a square)."""
    from vae_core.checkpoints import load_checkpoint
    from vae_core.images import to_display

    ck = load_checkpoint(path)
    with torch.no_grad():
        a = to_display(ck.model.decode_mean(torch.tensor([z]))[0], ck.model_config.input_shape)
    return (a[..., None] if a.ndim == 2 else a) * 255


@pytest.mark.parametrize("module", ["explorer", "elbo", "traversal", "upload", "train"])
@pytest.mark.parametrize("k", [3, 2, 1, "conv"])
def test_every_page_runs_without_exceptions(use_cache, module, k):
    at = _app(module, _ckpt_path(use_cache, k))
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.title, "the page shows a title"


def _release_shows(at: AppTest, path: str, new: list[float], before: np.ndarray) -> None:
    """Report `new` as a slider release does, rerun: the server-decoded image is PyTorch's decode of it."""
    sync = at.session_state["explorer_z"]
    assert sync.report({"z": new, "rev": sync.rev})  # what the decoder's `z` trigger does
    at.run()
    _no_exception(at)
    z, after = _server_decoded(at)
    assert z == new and not np.array_equal(after, before)
    np.testing.assert_allclose(after, _pytorch_image(path, new), atol=0.51)  # 8-bit rounding only


def test_explorer_slider_change_changes_the_decoded_image(use_cache):
    """MLP with the in-browser toggle off: the server decodes each z the sliders send."""
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    assert "weights_id" in _component_data(at, "vae_latent_decoder")  # in the browser by default
    at.toggle(key="explorer_live").set_value(False).run()
    _no_exception(at)
    z, before = _server_decoded(at)
    assert z == at.session_state["explorer_z"].z
    np.testing.assert_allclose(before, _pytorch_image(path, z), atol=0.51)  # 8-bit rounding only
    _release_shows(at, path, [2.5 if z[0] < 2 else -2.5] + z[1:], before)


def test_conv_models_decode_in_the_browser_with_the_server_as_fallback(use_cache):
    path = _ckpt_path(use_cache, "conv")
    at = _app("explorer", path)
    _no_exception(at)
    data = _component_data(at, "vae_latent_decoder")
    assert data["weights"]["format"] == "vae-conv-decoder/1" and "image" not in data  # decoded in the browser
    at.toggle(key="explorer_live").set_value(False).run()  # the fallback: the server decodes
    _no_exception(at)
    assert not [s for s in at.slider if s.key.startswith("explorer_z")]  # the component's sliders instead
    z, before = _server_decoded(at)
    np.testing.assert_allclose(before, _pytorch_image(path, z), atol=0.51)
    kl = _component_data(at, "vae_latent_decoder")["labels"]
    d = int(np.argmax([float(t.split("KL ")[1].split(" ")[0]) for t in kl]))  # the most informative dim
    new = list(z)
    new[d] = -3.0 if z[d] > 0 else 3.0
    _release_shows(at, path, new, before)
    at.button(key="explorer_btn_zero").click().run()  # a z button: the image follows
    z3, zero = _server_decoded(at)
    assert z3 == [0.0] * 4
    np.testing.assert_allclose(zero, _pytorch_image(path, z3), atol=0.51)


def test_explorer_point_selection_loads_its_mean_into_the_sliders(use_cache):
    path = _ckpt_path(use_cache, 3)
    x, model = _targets_and_model(path)
    at = _app("explorer", path)
    at.number_input(key="explorer_index").set_value(17).run()
    _no_exception(at)
    with torch.no_grad():
        mu = model.encode(x[17:18])[0][0]
    z = np.array(at.session_state["explorer_z"].z)
    np.testing.assert_allclose(z, np.clip(mu.numpy(), -3, 3), atol=1e-5)
    assert at.session_state["explorer_selected"] == 17
    assert any("test example #17" in m.value for m in at.markdown)  # its ELBO breakdown is shown
    assert _sliders_caption(at) == "Sliders: μ of test #17"
    # buttons: z = 0, then a prior sample; the sliders no longer hold the selected point's μ
    at.button(key="explorer_btn_zero").click().run()
    assert at.session_state["explorer_z"].z == [0.0, 0.0, 0.0]
    assert _sliders_caption(at) == "Sliders: 0, the prior's mean"
    at.button(key="explorer_btn_prior").click().run()
    assert at.session_state["explorer_z"].z != [0.0, 0.0, 0.0]
    assert _sliders_caption(at) == "Sliders: a prior sample, z ~ N(0, I)"
    at.number_input(key="explorer_index").set_value(18).run()
    assert _sliders_caption(at) == "Sliders: μ of test #18"
    sync = at.session_state["explorer_z"]
    assert sync.report({"z": [0.5, 0.5, 0.5], "rev": sync.rev})  # a slider drag, released
    at.run()
    assert _sliders_caption(at) == "Sliders: dragged by hand"
    assert any("Selected #18" in m.value for m in at.markdown)  # still selected: the breakdown below is its


def _sliders_caption(at: AppTest) -> str:
    """What the explorer says the sliders hold."""
    found = [c.value for c in at.caption if c.value.startswith("Sliders: ")]
    assert len(found) == 1, found
    return found[0]


def test_map_click_goes_through_the_same_selection(use_cache):
    """The canvas map's click arrives as its trigger {"select": test index}; the callback loads that
    point's cached mean (the value the browser already moved the sliders to), i.e. the encoder mean."""
    from app.components.latent_map import selected_index

    path = _ckpt_path(use_cache, 3)
    x, model = _targets_and_model(path)

    def script(path):
        import streamlit as st

        from app.common import load_model
        from app.views import explorer_z
        from app.views.latent_data import model_view

        view = model_view(load_model(path, __import__("os").path.getmtime(path)))
        st.session_state["explorer_map"] = {"select": 42}
        explorer_z.on_map_select(view)  # the map's on_select callback

    at = AppTest.from_function(script, args=(path,), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    with torch.no_grad():
        mu = model.encode(x[42:43])[0][0].numpy()
    np.testing.assert_allclose(at.session_state["explorer_z"].z, np.clip(mu, -3, 3), atol=1e-5)
    assert at.session_state["explorer_index"] == 42 and at.session_state["explorer_selected"] == 42
    assert selected_index("nothing_there") is None


def test_embedding_csv_export_round_trips(use_cache):
    from app.views.explorer_panels import embedding_csv
    from app.views.latent_data import model_view
    from app.views.latent_map import MapProjection
    from vae_core.checkpoints import load_checkpoint

    view = model_view(load_checkpoint(_ckpt_path(use_cache, 3)))
    proj = MapProjection("pca", view.pca, view.pca.transform(view.means), ("a", "b"), "")
    csv = embedding_csv(view, proj, 50)
    lines = csv.splitlines()
    assert lines[0] == "test_index,label,map_x,map_y,mu1,mu2,mu3" and len(lines) == 51
    a = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(a[:, 0], view.index[:50])
    np.testing.assert_array_equal(a[:, 1], view.labels[:50])
    np.testing.assert_allclose(a[:, 4:], view.means[:50], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[:, 2:4], view.pca.transform(view.means[:50]), rtol=1e-5, atol=1e-6)


def test_umap_map_is_used_once_its_cache_is_on_disk(use_cache):
    """A UMAP embedding on disk (here a stand-in array, not a real fit) becomes the map and the star's
    position comes from the kNN transform."""
    from vae_core import projection as proj
    from vae_core import projection_cache as pc

    path = _ckpt_path(use_cache, 3)
    x, model = _targets_and_model(path)
    index = proj.point_order(len(x))
    means = proj.encode_means(model, x[torch.from_numpy(index)])
    emb = np.random.default_rng(0).normal(size=(len(means), 2)).astype(np.float32)
    labels = np.full(len(index), -1)
    pc.write_cache(path, pc.ProjectionCache(pc.file_sha(path), index, labels, means, emb))
    try:
        at = _app("explorer", path)
        _no_exception(at)
        assert at.radio(key="explorer_projection").value == "UMAP"  # the default once it is cached
        assert any("placed by UMAP" in c.value for c in at.caption)
        data = _component_data(at, "vae_latent_map")
        assert data["axes"] == ["UMAP 1", "UMAP 2"] and data["proj"] == {
            "kind": "knn",
            "k": 3,
            "nNeighbors": 15,
            "equal_aspect": False,
        }
        xy = np.frombuffer(data["_blobs"]["points.xy"], "<f4").reshape(-1, 2)
        np.testing.assert_array_equal(xy, emb)  # the map draws the embedding; the star uses the same kNN
        assert data["selected"] == int(index[0]) and data["z"] == pytest.approx(np.clip(means[0], -3, 3).tolist())
    finally:
        os.unlink(pc.cache_path_for(path))


def test_a_failed_umap_job_is_reported_and_not_restarted_by_itself(use_cache, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from vae_core import umap_job

    spawned = []

    def failing(path):  # stands in for the UMAP child process: exits with an error
        spawned.append(path)
        fd, log = tempfile.mkstemp(suffix=".log")
        try:
            p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit('numba exploded')"], stderr=fd)
        finally:
            os.close(fd)
        return umap_job.UmapJob(p, log)

    monkeypatch.setattr(umap_job, "start_umap_process", failing)
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    at.radio(key="explorer_projection").set_value("UMAP").run()
    _no_exception(at)
    assert spawned == [path]
    assert any("computing UMAP" in i.value for i in at.info) or at.error
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine may take long to start python
    while not any("UMAP failed" in e.value for e in at.error):
        assert time.monotonic() < deadline, "the failure was not reported"
        time.sleep(0.3)
        at.run()
    assert any("numba exploded" in e.value for e in at.error)
    assert any("placed by PCA" in c.value for c in at.caption)  # the map falls back to PCA
    at.run()
    assert spawned == [path]  # no retry without asking
    at.button(key="explorer_projection_retry").click().run()
    assert spawned == [path, path]


def test_corrupt_checkpoint_shows_a_message_not_a_traceback(tmp_path, monkeypatch):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00garbage, not a safetensors file" * 10)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    for module in ("explorer", "elbo", "traversal", "upload"):
        at = _app(module)
        _no_exception(at)
        assert any("Cannot open this checkpoint" in e.value for e in at.error), module


def test_empty_cache_shows_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    for module in ("explorer", "train"):
        at = _app(module)
        _no_exception(at)
        assert any("No checkpoints" in w.value for w in at.sidebar.warning)


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((a * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_encodes_a_good_image_and_explains_a_bad_one(use_cache):
    at = _app("upload", _ckpt_path(use_cache, 3))
    digit = np.ones((64, 64))
    digit[10:54, 28:36] = 0.0  # a dark "1" on white paper
    at.file_uploader(key="upload_file").set_value(("one.png", _png(digit), "image/png")).run()
    _no_exception(at)
    assert not at.error
    assert any(r"Your image (one\.png)" in m.value for m in at.markdown)  # the file name escaped: text
    assert {"recon  E_q log p(x|z)", "ELBO = recon − KL"} <= {m.label for m in at.metric}
    at.file_uploader(key="upload_file").set_value(("broken.png", b"\x89PNG\r\n\x1a\n truncated", "image/png")).run()
    _no_exception(at)
    assert any("Cannot use this image" in e.value for e in at.error)


def test_train_page_trains_in_the_background_then_loads_from_cache(use_cache, monkeypatch):
    import app.views.train as train_page

    started = []
    monkeypatch.setattr(train_page, "start_umap", started.append)  # keep UMAP (numba JIT) out of tests
    at = _app("train")
    at.selectbox(key="train_dataset").set_value("digits")
    at.number_input(key="train_k").set_value(2)
    at.text_input(key="train_hidden").input("8")
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_seed").set_value(7)
    at.button[0].click().run()  # the form's submit button
    _no_exception(at)
    path = at.session_state["train_job"]
    assert os.path.dirname(path) == use_cache
    deadline = time.monotonic() + 240
    while at.session_state["sidebar_model_path"] != path:
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
        at.run()
        _no_exception(at)
        assert not at.error, [e.value for e in at.error]
    assert os.path.exists(path)
    from vae_core.projection_cache import cache_path_for, read_cache

    assert read_cache(path) is not None, "the map's means were saved right after training"
    assert os.path.exists(cache_path_for(path))
    assert started == [path]
    # the same config again: a cache hit, no second job
    jobs, _ = train_page._registry()
    n_jobs = len(jobs)
    at.button[0].click().run()
    _no_exception(at)
    assert len(jobs) == n_jobs
    assert at.session_state["sidebar_model_path"] == path


def test_two_sessions_asking_for_one_config_share_a_job(use_cache, monkeypatch):
    import threading

    import app.views.train as train_page

    gate = threading.Event()

    def slow_run(job, data):  # stands in for training; the registry logic is what is tested
        gate.wait(30)
        job.status = "done"

    monkeypatch.setattr(train_page, "_run", slow_run)
    data = load_dataset("digits")
    mcfg = ModelConfig(input_shape=data.input_shape, latent_dim=2, hidden=(4,))
    tcfg = TrainConfig(dataset="digits", epochs=1, seed=12345)
    a, started_a = train_page.start_job(mcfg, tcfg, data)
    b, started_b = train_page.start_job(mcfg, tcfg, data)
    gate.set()
    assert started_a and not started_b and a is b


@pytest.mark.skipif(
    not all(
        os.path.exists(os.path.join(os.path.dirname(__file__), "..", "app", "lab", m + ".py"))
        for m in (
            "elbo_anatomy",
            "importance_sampling",
            "gradient_estimators",
            "beta_collapse",
            "aggregate_posterior",
            "ae_vs_vae",
        )
    ),
    reason="the Lab pages are not all written yet",
)
def test_main_opens_on_the_explorer(use_cache):
    at = AppTest.from_file(os.path.join(os.path.dirname(__file__), "..", "app", "main.py"), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    assert any("Latent explorer" in t.value for t in at.title)


def test_explorer_offers_the_standalone_export(use_cache):
    """The download button serves the same file as `python -m vae_core export-html` (built on click)."""
    path = _ckpt_path(use_cache, 2)
    at = _app("explorer", path)
    _no_exception(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("standalone explorer" in label for label in labels), labels
    from app.views.explorer_panels import _explorer_html
    from vae_core.checkpoints import load_checkpoint

    html = _explorer_html(path, os.path.getmtime(path), load_checkpoint(path)).decode("utf-8")
    assert html.startswith("<!doctype html>") and "default-src 'none'" in html and "vae-mlp-decoder/1" in html


def test_the_umap_jobs_progress_is_shown_while_it_runs(use_cache, monkeypatch):
    """The job prints progress lines (vae_core.umap_job.print_progress); the page shows the last one
    as a progress bar under the PCA map. Here a stand-in child prints one and waits."""
    import subprocess
    import sys
    import tempfile

    from vae_core import umap_job

    children = []

    def running(path):
        fd, log = tempfile.mkstemp(suffix=".log")
        try:
            p = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from vae_core.umap_job import print_progress; import time; "
                    "from vae_core.progress import Progress; print_progress(Progress('map', 80, 200, "
                    "'UMAP epoch 80 of 200 (10,000 of 60,000 points)')); "
                    "time.sleep(600)",
                ],
                stdout=fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        children.append(p)
        return umap_job.UmapJob(p, log)

    monkeypatch.setattr(umap_job, "start_umap_process", running)
    from app.views.latent_data import _umap_jobs

    _umap_jobs.clear()  # the process-wide job registry: forget other tests' jobs for this checkpoint
    try:
        at = _app("explorer", _ckpt_path(use_cache, 3))
        at.radio(key="explorer_projection").set_value("UMAP").run()
        deadline = time.monotonic() + 600  # a hang guard: starting python on a loaded machine
        while not at.get("progress"):
            assert time.monotonic() < deadline, "no progress bar"
            time.sleep(0.3)
            at.run()
        bar = at.get("progress")[0].proto
        assert bar.value == 40  # its text is Markdown, escaped as text (app.safe.plain)
        assert bar.text.replace("\\", "") == "UMAP epoch 80 of 200 (10,000 of 60,000 points)"
        assert any("placed by PCA" in c.value for c in at.caption)  # PCA meanwhile
    finally:
        for p in children:
            p.kill()
            p.wait()
