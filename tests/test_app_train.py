"""The Train page says what it is doing at every phase and opens what it trained at once (AppTest).

A tiny MLP on the embedded `digits` set, 1 epoch, into a temporary checkpoint cache. UMAP is never
started (the page's launcher is replaced by a recorder).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache_mod

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit (loaded 2-core machines)
SCRIPT = "import streamlit as st\nfrom app.views import train\nst.set_page_config(layout='wide')\ntrain.render()\n"


@pytest.fixture
def page(tmp_path, monkeypatch):
    import app.views.train as train_page

    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setattr(train_page, "start_umap", lambda path: None)  # keep UMAP (numba JIT) out of tests
    train_page._registry()[0].clear()
    old_model(tmp_path)
    at = AppTest.from_string(SCRIPT, default_timeout=TIMEOUT)
    at.run()
    return at


def old_model(folder) -> str:
    """An untrained model already in the cache: the one the sidebar shows before training."""
    import torch

    from vae_core.checkpoints import save_checkpoint
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.model import VAE

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(4,)))
    return save_checkpoint(str(folder / "old.safetensors"), model, TrainConfig(dataset="digits", epochs=1))


def _fill(at: AppTest, seed: int, epochs: int = 1) -> None:
    at.selectbox(key="train_dataset").set_value("digits")
    at.number_input(key="train_k").set_value(2)
    at.text_input(key="train_hidden").input("8")
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_seed").set_value(seed)


def _submit(at: AppTest) -> None:
    next(b for b in at.button if b.proto.is_form_submitter).click().run()
    assert not at.exception, [e.message for e in at.exception]


def _sidebar_model(at: AppTest) -> str:
    return at.selectbox(key="sidebar_model_select").value


def _links(at: AppTest) -> list:
    return [(e.proto.label, e.proto.page) for e in at.get("page_link")]


def test_the_sidebar_shows_the_new_model_right_after_training(page, monkeypatch):
    import app.views.train as train_page

    phases = []
    real_phase_of, real_save = train_page.phase_of, train_page.save_map_cache

    def recording_phase_of(ev):
        ph = real_phase_of(ev)
        phases.append(ph.phase)
        return ph

    def recording_save(ckpt, *a, **kw):  # the map's cache, written while the job says "map"
        phases.append(train_page._registry()[0][ckpt.path].phase.phase)
        return real_save(ckpt, *a, **kw)

    monkeypatch.setattr(train_page, "phase_of", recording_phase_of)
    monkeypatch.setattr(train_page, "save_map_cache", recording_save)
    at = page
    assert os.path.basename(_sidebar_model(at)) == "old.safetensors"
    _fill(at, seed=7, epochs=2)  # epoch 1's end is a "train" event whatever the machine's speed
    _submit(at)
    path = at.session_state["train_job"]
    deadline = time.monotonic() + 300  # a hang guard
    while not any("Trained and saved" in s.value for s in at.success):
        assert time.monotonic() < deadline, "training did not finish"
        assert not at.error, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    # the same run that says so shows the new model in the sidebar: no navigation needed
    assert _sidebar_model(at) == path
    assert any(os.path.basename(path) in s.value.replace("\\", "") for s in at.success)  # escaped as text
    assert ("Open it in the explorer", "explorer") in _links(at)
    assert "train" in phases and phases.index("evaluate") > max(i for i, p in enumerate(phases) if p == "train")
    assert phases[-1] == "map"


def test_a_cached_config_says_it_is_already_trained_and_opens_it(page):
    at = page
    _fill(at, seed=8)
    _submit(at)
    path = at.session_state["train_job"]
    deadline = time.monotonic() + 300
    while _sidebar_model(at) != path:
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
        at.run()
    _submit(at)  # the same config again
    assert any(
        "Already trained: opened" in s.value and os.path.basename(path) in s.value.replace("\\", "") for s in at.success
    ), [s.value for s in at.success]
    assert _sidebar_model(at) == path
    assert ("Open it in the explorer", "explorer") in _links(at)
    assert "train_job" not in at.session_state  # no job was started


def test_each_phase_is_named_while_it_runs(page, monkeypatch):
    """A stand-in job walks through the phases; the page names each one in turn, with an ETA while
    training and its own bar for a phase whose size is known."""
    import app.views.train as train_page
    from app.views.train import Phase

    steps = [
        Phase("setup", 0, 0, "setting up the model and optimiser"),
        Phase("train", 0.5, 2, "epoch 1/2 · batch loss 3.00"),
        Phase("evaluate", 0, 0, "log p(x) on the test set by importance sampling"),
        Phase("evaluate", 40, 100, "log p(x): 40 of 100 test batches"),
        Phase("map", 0, 0, "encoding the test set for its PCA map"),
    ]
    go, ready = threading.Event(), threading.Event()

    def stepping_run(job, data):
        job.train_started = time.time() - 10  # 10 s for a quarter of the epochs: ~30 s left
        for ph in steps:
            job.phase = ph
            ready.set()
            go.wait(60)
            go.clear()
        job.status, job.finished = "done", time.time()

    monkeypatch.setattr(train_page, "_run", stepping_run)
    at = page
    _fill(at, seed=9)
    seen = []
    for i, _ph in enumerate(steps):
        if i == 0:
            _submit(at)
        else:
            go.set()
        assert ready.wait(60)
        ready.clear()
        at.run()
        texts = [b.proto.text.replace("\\", "") for b in at.get("progress")] + [
            m.value.replace("\\", "") for m in at.info
        ]
        seen.append(texts)
    assert "Starting" in seen[0][0] and "setting up the model" in seen[0][0]
    assert "Training" in seen[1][0] and "epoch 1/2" in seen[1][0] and "left" in seen[1][0]
    assert "1 of 1 epochs done" in seen[2][0]  # the job's config: 1 epoch
    assert any(t.startswith("Evaluating: log p(x) on the test set") for t in seen[2])
    assert any(t.startswith("Evaluating: log p(x): 40 of 100") for t in seen[3])
    assert any(t.startswith("Fitting the map: encoding the test set") for t in seen[4]), seen[4]
    go.set()


def test_eta_follows_the_time_per_epoch():
    from app.views.train import Job, Phase, eta

    job = Job("x.safetensors", None, None, phase=Phase("train", 1.0, 4.0, "epoch 2/4"), train_started=100.0)
    assert eta(job, now=110.0) == " · about 30 s left"  # 10 s an epoch, 3 to go
    job.train_done0 = 0.5  # the clock started half an epoch in: 20 s an epoch
    assert eta(job, now=110.0) == " · about 60 s left"
    job.phase = Phase("evaluate", 0, 0, "")
    assert eta(job, now=110.0) == ""
