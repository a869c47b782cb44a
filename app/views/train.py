"""Train: a new model on any registered dataset, in a background thread, with live curves.

Jobs live in a process-wide registry (st.cache_resource) keyed by the checkpoint's cache path:
two sessions asking for the same config watch one job; across processes train_or_load's file lock
makes the second wait and load. A cached config loads at once. The page polls with a fragment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import streamlit as st

from app.common import current_checkpoint, explorer_link, select_checkpoint
from app.safe import plain
from app.settings import training_allowed
from app.views.latent_data import start_umap
from app.widgets import training_curves
from vae_core import likelihoods
from vae_core.cache import DEFAULT_TRAIN, cache_path, train_or_load
from vae_core.config import ARCHS, LIKELIHOODS, OBJECTIVES, ConfigError, ModelConfig, TrainConfig, parse_hidden
from vae_core.data import REGISTRY, DatasetError, check_for_likelihood, load_dataset
from vae_core.data_access import ROOTS_ENV, allowed_roots
from vae_core.data_upload import MAX_DATASET_UPLOAD_BYTES, save_uploaded_dataset
from vae_core.losses import check_objective_options
from vae_core.progress import Progress
from vae_core.projection_build import save_map_cache
from vae_core.train import TrainingDivergedError

P = "train_"
_LOG = logging.getLogger(__name__)


class _Cancelled(Exception):
    pass


@dataclass(frozen=True)
class Phase:
    """What a job is doing, as the page shows it: "setup", "train" (done/total in epochs),
    "evaluate" (log p(x) on the test set), "map" (the projection cache). Built only by phase_of()."""

    phase: str
    done: float
    total: float
    message: str


# vae_core.progress phases -> the page's: data moves are part of setup; the map cache's encode and
# UMAP steps are all "fitting the map".
_PAGE_PHASE = {"data": "setup", "train": "train", "evaluate": "evaluate", "encode": "map", "map": "map", "place": "map"}


def phase_of(ev: Progress) -> Phase:
    """The one adapter from vae_core's Progress (vae_core.progress) to what the page shows."""
    phase = _PAGE_PHASE.get(ev.phase, ev.phase)
    if phase == "train":  # in epochs, for the ETA
        return Phase(
            "train",
            ev.fraction * ev.epochs,
            float(ev.epochs),
            f"epoch {ev.epoch}/{ev.epochs} · batch loss {ev.loss:.2f}",
        )
    if phase == "evaluate":
        return Phase("evaluate", float(ev.done), float(ev.total), "log p(x) on the test set by importance sampling")
    return Phase(phase, float(ev.done), float(ev.total), str(ev.message))


@dataclass
class Job:
    path: str
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    status: str = "running"  # running | done | cached | failed | cancelled
    phase: Phase = Phase("setup", 0.0, 0.0, "setting up the model and optimiser")
    history: list = field(default_factory=list)
    error: str | None = None
    cancel: bool = False
    started: float = field(default_factory=time.time)
    train_started: float | None = None  # time of the first training event: the ETA's clock ...
    train_done0: float = 0.0  # ... and the epochs done by then
    finished: float | None = None


@st.cache_resource
def _warm_up() -> threading.Thread:
    """torch.optim.Adam's first construction imports torch._dynamo (seconds): do it before a job needs it."""

    def work():
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    th = threading.Thread(target=work, name="torch-optim-warm-up", daemon=True)
    th.start()
    return th


@st.cache_resource
def _registry() -> tuple[dict, threading.Lock]:
    """Process-wide: cache path -> Job (running or recently finished)."""
    return {}, threading.Lock()


def _save_map(ckpt, data, job: Job | None = None) -> None:
    """Right after training: the map's means (PCA is instant from them); UMAP starts afterwards.
    Only a speed-up: if it cannot be written (read-only folder), the explorer computes it itself."""
    if job is not None:
        job.phase = Phase("map", 0.0, 0.0, "encoding the test set for its PCA map")
    problem = save_map_cache(ckpt, data)
    if problem is not None:
        _LOG.warning("%s: %s", ckpt.path, problem)


def _run(job: Job, data) -> None:
    def progress(ev):
        if job.cancel:
            raise _Cancelled()
        job.phase = phase_of(ev)
        if job.phase.phase == "train" and job.train_started is None:
            job.train_started, job.train_done0 = time.time(), job.phase.done
        if getattr(ev, "history", None) is not None:
            job.history = list(ev.history)

    try:
        ckpt, cached = train_or_load(
            job.model_cfg, job.train_cfg, data, progress=progress, on_trained=lambda c: _save_map(c, data, job)
        )
        job.history = list(ckpt.history)
        job.status = "cached" if cached else "done"
    except _Cancelled:
        job.status = "cancelled"
    except TrainingDivergedError as e:
        job.status, job.error = "failed", str(e)
    except Exception as e:  # shown in the UI; the thread must not die silently
        job.status, job.error = "failed", f"{type(e).__name__}: {e}"
    job.finished = time.time()


def start_job(model_cfg: ModelConfig, train_cfg: TrainConfig, data) -> tuple[Job, bool]:
    """(job, started_now). Joins a running job for the same cache path instead of starting another."""
    path = cache_path(model_cfg, train_cfg, data)
    jobs, lock = _registry()
    with lock:
        job = jobs.get(path)
        if job is not None and job.status == "running":
            return job, False
        job = Job(path, model_cfg, train_cfg)
        jobs[path] = job
    threading.Thread(target=_run, args=(job, data), name=f"train-{os.path.basename(path)}", daemon=True).start()
    return job, True


UPLOAD = "upload a dataset (.npz or .zip)…"
SERVER_PATH = "a .npz file or image folder on the server…"


def _dataset_choices() -> list[str]:
    """Registered datasets, a browser upload, and paths only where the server allows some."""
    extra = [UPLOAD] + ([SERVER_PATH] if os.environ.get(ROOTS_ENV) else [])
    return sorted(REGISTRY) + extra


def _dataset_name(choice: str, path: str, upload) -> str | None:
    """The name load_dataset takes for this choice; an upload is validated and stored first.
    Raises DatasetError with a message for the user."""
    if choice == UPLOAD:
        if upload is None:
            raise DatasetError("choose a .npz or .zip file to upload first")
        with st.spinner(f"Checking {plain(upload.name)}…"):
            return save_uploaded_dataset(upload.getvalue(), upload.name)
    if choice == SERVER_PATH:
        if not path.strip():
            raise DatasetError("type the path of a .npz file or an image folder on the server")
        return path.strip()
    return choice


def _dataset_widgets(col) -> tuple[str, object, str]:
    """The form's first column: dataset choice, its upload and its server path."""
    names = _dataset_choices()
    ds = col.selectbox(
        "Dataset",
        names,
        index=names.index("mnist-5k"),
        key=P + "dataset",
        help="mnist-5k and digits ship with the Python packages; the torchvision sets "
        "must already be on the server. Upload: an .npz with x_train, x_test "
        "(+ y_train, y_test), or a .zip of an image folder (one subfolder per class).",
    )
    upload = col.file_uploader(
        "Dataset file (for upload)",
        type=["npz", "zip"],
        key=P + "upload",
        max_upload_size=MAX_DATASET_UPLOAD_BYTES // 2**20,
    )
    path = (
        col.text_input(
            "Path on the server",
            key=P + "path",
            help="Only inside the folders this server allows: " + ", ".join(allowed_roots()),
        )
        if SERVER_PATH in names
        else ""
    )
    return ds, upload, path


def _form_values() -> dict | None:
    """The training form's widgets; their values once submitted, else None."""
    t = DEFAULT_TRAIN
    v = {}
    with st.form(P + "form"):
        c = st.columns(4)
        v["ds"], v["upload"], v["path"] = _dataset_widgets(c[0])
        v["arch"] = c[1].selectbox("Architecture", ARCHS, key=P + "arch")
        v["hidden"] = c[1].text_input("Hidden widths", "400", key=P + "hidden", help="comma-separated, '' = linear")
        v["k"] = c[2].number_input("Latent dim", 1, 128, 16, key=P + "k", help="2 shows the latent plane directly")
        v["like"] = c[2].selectbox("Likelihood", LIKELIHOODS, key=P + "likelihood")
        v["binarize"] = c[3].selectbox(
            "Binarize (Bernoulli)",
            ["dynamic", "fixed", "none"],
            key=P + "binarize",
            help="dynamic: a fresh Bernoulli draw of each image every epoch (IWAE paper)",
        )
        v["objective"] = c[3].selectbox("Objective", OBJECTIVES, key=P + "objective")
        c = st.columns(5)
        v["beta"] = c[0].number_input("β", 0.0, 100.0, 1.0, 0.1, key=P + "beta")
        v["warm"] = c[1].number_input("KL warm-up (epochs)", 0.0, 100.0, 0.0, 1.0, key=P + "warmup")
        v["fb"] = c[2].number_input("Free bits (nats/dim)", 0.0, 10.0, 0.0, 0.1, key=P + "free_bits")
        v["epochs"] = c[3].number_input("Epochs", 1, 500, 20, key=P + "epochs")
        v["seed"] = c[4].number_input("Seed", 0, 2**31 - 1, 0, key=P + "seed")
        with st.expander("Optimiser"):
            c = st.columns(2)
            v["lr"] = c[0].number_input("Learning rate", 1e-5, 1e-1, t.lr, format="%.5f", key=P + "lr")
            v["bs"] = c[1].number_input("Batch size", 8, 4096, t.batch_size, key=P + "bs")
        go_ = st.form_submit_button("Train (or load if cached)", type="primary")
    return v if go_ else None


def _configs(v: dict) -> tuple[ModelConfig, TrainConfig, object] | None:
    """The submitted form checked into (model config, train config, data); one error message if it cannot be."""
    try:
        hid = parse_hidden(v["hidden"])
    except ConfigError as e:
        st.error(f"Cannot train this: {plain(e)}")
        return None
    try:
        name = _dataset_name(v["ds"], v["path"], v["upload"])
        with st.spinner("Loading the dataset…"):
            data = load_dataset(name, test_fraction=DEFAULT_TRAIN.test_fraction, allowed_roots=allowed_roots())
        like, binarize = v["like"], v["binarize"]
        lik = likelihoods.get(like)
        tcfg = TrainConfig(
            dataset=name,
            epochs=int(v["epochs"]),
            batch_size=int(v["bs"]),
            lr=float(v["lr"]),
            seed=int(v["seed"]),
            objective=v["objective"],
            beta=float(v["beta"]),
            warmup_epochs=float(v["warm"]),
            free_bits=float(v["fb"]),
            binarize=lik.binarize_for(binarize if binarize in lik.binarize_options else None),
        )
        check_objective_options(tcfg)
        mcfg = ModelConfig(
            input_shape=data.input_shape, latent_dim=int(v["k"]), arch=v["arch"], hidden=hid, likelihood=like
        )
        check_for_likelihood(data, like, tcfg.binarize)
    except (DatasetError, ConfigError, ValueError, OSError) as e:
        st.error(f"Cannot train this: {plain(e)}")
        return None
    return mcfg, tcfg, data


def _form() -> tuple[ModelConfig, TrainConfig, object] | None:
    """The training form: (model config, train config, data) once submitted and valid, else None."""
    v = _form_values()
    return None if v is None else _configs(v)


def _seconds(t: float) -> str:
    return f"{t:.0f} s" if t < 90 else f"{t / 60:.0f} min"


def eta(job: Job, now: float) -> str:
    """' · about 40 s left' while training, from the time per epoch since the first training event;
    '' before it is known. left = elapsed * (total - done) / (done - done at the first event)."""
    ph = job.phase
    if ph.phase != "train" or job.train_started is None or ph.done <= job.train_done0:
        return ""
    per_epoch = (now - job.train_started) / (ph.done - job.train_done0)
    return f" · about {_seconds(per_epoch * (ph.total - ph.done))} left"


def _running(job: Job, name: str) -> None:
    """One line per phase: what is happening, with a bar where its size is known."""
    ph, now = job.phase, time.time()
    took = f" · {_seconds(now - job.started)}"
    if ph.phase == "setup":
        st.progress(0.0, text=f"Starting {name}: {ph.message}…{took}")
    elif ph.phase == "train":
        st.progress(min(1.0, ph.done / max(ph.total, 1e-9)), text=f"Training {name}: {ph.message}{eta(job, now)}{took}")
    else:  # evaluate, map: the epochs are done; this phase gets its own line
        st.progress(1.0, text=f"Trained {name}: {job.train_cfg.epochs} of {job.train_cfg.epochs} epochs done{took}")
        what = {"evaluate": "Evaluating", "map": "Fitting the map"}.get(ph.phase, ph.phase.capitalize())
        if ph.total > 0:
            st.progress(min(1.0, ph.done / ph.total), text=f"{what}: {ph.message}")
        else:
            st.info(f"{what}: {ph.message}…", icon=":material/hourglass_top:")


@st.fragment(run_every=1.0)
def _watch() -> None:
    path = st.session_state.get(P + "job")
    jobs, lock = _registry()
    with lock:
        job = jobs.get(path)
    if job is None:
        return
    name = plain(os.path.basename(job.path))
    if job.status == "running":
        _running(job, name)
        if st.button("Cancel", key=P + "cancel"):
            job.cancel = True
    elif job.status in ("done", "cached"):
        if st.session_state.get(P + "opened") != job.path:
            st.session_state[P + "opened"] = job.path
            start_umap(job.path)  # the map's UMAP, in the background
            select_checkpoint(job.path)
            st.rerun(scope="app")  # the whole app: the sidebar shows the new model at once
        took = f" in {_seconds(job.finished - job.started)}" if job.finished else ""
        st.success(
            ("Loaded from the cache: " if job.status == "cached" else f"Trained and saved{took}: ")
            + name
            + ". It is now the open model (sidebar)."
        )
        explorer_link()
    elif job.status == "cancelled":
        st.warning("Training was cancelled; nothing was saved.")
    else:
        st.error(f"Training failed: {plain(job.error)}")
    if job.history:
        c1, c2 = st.columns(2)
        f1, f2 = training_curves(job.history, height=300)
        c1.plotly_chart(f1, key=P + "curve_elbo")
        c2.plotly_chart(f2, key=P + "curve_terms")


def render() -> None:
    st.title(":material/model_training: Train a model")
    if not training_allowed():  # main.py hides the page too; this guards a direct import
        st.info("Training is switched off on this server (VAE_ALLOW_TRAINING=0).")
        return
    current_checkpoint()  # the sidebar picker: training switches it to the new model
    _warm_up()
    st.caption(
        "Trains in the background (the page stays usable), then joins the checkpoint cache. A "
        "config that was trained before loads at once; two sessions asking for the same config "
        "share one training run."
    )
    got = _form()
    if got is not None:
        st.session_state.pop(P + "already", None)
        mcfg, tcfg, data = got
        path = cache_path(mcfg, tcfg, data)
        if os.path.exists(path):  # nothing to train: open it, and say so after the rerun
            st.session_state[P + "already"] = path
            select_checkpoint(path)
            st.session_state.pop(P + "job", None)
            st.rerun()
        job, started = start_job(mcfg, tcfg, data)
        st.session_state[P + "job"] = job.path
        st.session_state.pop(P + "opened", None)
        if not started:
            st.info("Another session is training this exact config: showing its progress.")
    already = st.session_state.get(P + "already")
    if already is not None:
        st.success(
            f"Already trained: opened {plain(os.path.basename(already))} from the cache (sidebar), nothing to train.",
            icon=":material/check_circle:",
        )
        explorer_link()
    _watch()
