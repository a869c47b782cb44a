"""Shared app plumbing: cached model/data loading and the sidebar model picker.

Cached objects are shared by every browser session: treat them as read-only (no .train(), no .to()).
Stable interface used by all pages:
    ckpt = current_checkpoint()      # sidebar picker; None (with a message shown) if unusable
    data = dataset_for(ckpt)         # the Dataset the checkpoint was trained on (cached)
    x_test = test_targets(ckpt)      # test set as the model's likelihood sees it (binarized if so)
Torch-free, for a first paint before torch is loaded (importing this module loads no torch either):
    path = pick_checkpoint_path()    # the same sidebar picker, without loading the model
    rows, path = checkpoint_listing() # the folder's rows and the path the picker would open (no widget)
    meta = checkpoint_metadata(path) # its configs, history, dataset info and metrics
    ckpt = open_checkpoint(path)     # then the model itself (imports torch), as current_checkpoint
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

import streamlit as st

from app.safe import plain
from vae_core.cache import default_cache_dir, default_checkpoint_path, list_checkpoints
from vae_core.checkpoints import Checkpoint, CheckpointError, load_checkpoint, read_metadata
from vae_core.constants import KL_COLLAPSED_NATS

if TYPE_CHECKING:  # vae_core.data imports torch: imported inside the functions that load data
    import torch

    from vae_core.dataset import Dataset

_KEY = "sidebar_model_path"  # the one session-state key shared by pages: which model is open
_WIDGET = "sidebar_model_select"  # the picker widget's own key
_PENDING = "sidebar_model_pending"  # a model to show in the picker on its next render (select_checkpoint)
# A model whose test-set KL(q(z|x) || p(z)) averages below this many nats per latent dim has z carrying
# almost nothing about x (barely trained, or collapsed): the shipped model has 1.5, a 1-epoch one 0.04.
LOW_KL_NATS_PER_DIM = 0.1
EXPLORER_PATH = "explorer"  # the explorer's address besides "/" (app/main.py), for links from other pages
_THREADS = threading.Lock()  # sessions change torch's thread setting one at a time


@contextlib.contextmanager
def one_thread():
    """Small interactive torch work (one z decoded, one example's ELBO breakdown) on one thread.
    With torch's intra-op pool every op waits at a barrier for its worker threads, which a busy
    machine (the browser, other sessions) may not schedule at once: a 1 ms decode took 50-130 ms on
    2 loaded cores, and spinning workers bill the server CPU for it. The setting is partly
    process-wide (OpenMP keeps it per thread, torch's pool does not), so the lock keeps two sessions
    from interleaving get/set and leaving the server at 1 thread."""
    import torch  # not at import time: the explorer draws its map before torch is loaded

    with _THREADS:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(n)


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def load_model(path: str, mtime: float) -> Checkpoint:
    """Keyed on (path, mtime) so a re-written file is reloaded."""
    return load_checkpoint(path)


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def load_data(name: str, test_fraction: float) -> Dataset:
    """A registered dataset, a browser upload, or a file under the server's allowed data roots:
    a checkpoint's stored dataset path is a string from a file, and is checked like user input."""
    from vae_core.data import load_dataset
    from vae_core.data_access import allowed_roots

    return load_dataset(name, test_fraction=test_fraction, allowed_roots=allowed_roots())


def dataset_for(ckpt: Checkpoint) -> Dataset:
    return load_data(ckpt.train_config.dataset, ckpt.train_config.test_fraction)


@st.cache_resource(max_entries=8)
def _test_targets(path: str, mtime: float, name: str, test_fraction: float, binarize: str) -> torch.Tensor:
    from vae_core.data import eval_targets

    return eval_targets(load_data(name, test_fraction).x_test, binarize)


def test_targets(ckpt: Checkpoint) -> torch.Tensor:
    tc = ckpt.train_config
    return _test_targets(ckpt.path, os.path.getmtime(ckpt.path), tc.dataset, tc.test_fraction, tc.binarize)


def checkpoint_label(row: dict) -> str:
    """One line per cache entry (selectbox options are plain text). Rows are validated by
    vae_core.checkpoints.read_metadata; an unreadable file is listed with its reason."""
    if "error" in row:
        reason = str(row["error"]).split(": ", 1)[-1]  # the message starts with the path
        return f"⚠ {os.path.basename(row['path'])} (unreadable: {reason[:120]})"
    mc, tc = row["model_config"], row["train_config"]
    elbo = row.get("test_elbo")
    e = f"ELBO {elbo:.1f}" if elbo is not None else "no ELBO"
    return (
        f"{os.path.basename(row['path'])[:-12]} · {tc['dataset']} · {mc['arch']} z={mc['latent_dim']} · "
        f"{tc['objective']} β={tc['beta']:g} · {e}"
    )


def _folder_signature(folder: str) -> tuple:
    """(name, mtime, size) of every checkpoint file in folder: changes when any of them does."""
    try:
        with os.scandir(folder) as it:
            return tuple(
                sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it if e.name.endswith(".safetensors"))
            )
    except OSError:
        return ()


@st.cache_data(max_entries=8, show_spinner=False)
def _rows(folder: str, signature: tuple) -> list[dict]:
    """The picker's rows, read once per change of the folder for every session (each row's header
    is parsed and checked: ~40 ms a file)."""
    return list_checkpoints(folder)


@st.cache_data(max_entries=8, show_spinner=False)
def _default_path(folder: str, signature: tuple) -> str:
    return default_checkpoint_path(folder)


def checkpoint_listing() -> tuple[list[dict], str | None]:
    """The checkpoint folder's rows (list_checkpoints, cached) and the path the picker opens without
    a choice in the widget: this session's model, else the shipped default, else the first (None:
    the folder is empty). For links, before the sidebar is drawn."""
    folder = default_cache_dir()
    signature = _folder_signature(folder)
    rows = _rows(folder, signature)
    paths = [r["path"] for r in rows]
    current = st.session_state.get(_KEY)
    if current not in paths and paths:
        default = _default_path(folder, signature)
        current = default if default in paths else paths[0]
    return rows, current if paths else None


def pick_checkpoint_path() -> str | None:
    """Sidebar picker over the checkpoint cache (headers only, no torch). None, with a message
    shown, when the cache is empty."""
    folder = default_cache_dir()
    signature = _folder_signature(folder)
    rows = _rows(folder, signature)
    if not rows:
        st.sidebar.warning("No checkpoints in the cache yet: train one on the Train page.")
        return None
    paths = [r["path"] for r in rows]
    pending = st.session_state.pop(_PENDING, None)
    if pending in paths:  # set before the widget renders: its state, not only its default, is the new model
        st.session_state[_WIDGET] = st.session_state[_KEY] = pending
    current = st.session_state.get(_KEY)
    if current not in paths:
        default = _default_path(folder, signature)
        current = default if default in paths else paths[0]
    labels = {r["path"]: checkpoint_label(r) for r in rows}
    path = st.sidebar.selectbox("Model", paths, index=paths.index(current), format_func=labels.get, key=_WIDGET)
    st.session_state[_KEY] = path
    try:
        warning = little_information(_metadata(path, os.path.getmtime(path)))
    except (CheckpointError, OSError):  # the page itself says what is wrong with the file
        warning = None
    if warning:
        st.sidebar.warning(warning, icon=":material/warning:")
    return path


def little_information(meta: dict) -> str | None:
    """A warning for a model whose z says almost nothing about x: its average KL per latent dim is
    below LOW_KL_NATS_PER_DIM, or most dims are collapsed (KL below KL_COLLAPSED_NATS). From the test
    metrics, or the last epoch's test KL when the file has none. None: no such problem, or no numbers."""
    kl = (meta.get("metrics") or {}).get("kl_per_dim")
    if not kl and meta.get("history"):
        kl = meta["history"][-1].get("test_kl_per_dim")
    if not kl:
        return None
    mean, collapsed = sum(kl) / len(kl), sum(v < KL_COLLAPSED_NATS for v in kl)
    if mean >= LOW_KL_NATS_PER_DIM and 2 * collapsed <= len(kl):
        return None
    return (
        f"Little information in z: average KL {mean:.2f} nats per latent dim, {collapsed} of {len(kl)} dims "
        f"collapsed (< {KL_COLLAPSED_NATS:g}). Barely trained or collapsed: the map and sliders show little."
    )


@st.cache_data(max_entries=32, show_spinner=False)
def _metadata(path: str, mtime: float) -> dict:
    return read_metadata(path)


def checkpoint_metadata(path: str) -> dict | None:
    """Configs, history, dataset info and metrics from the file's header (no torch), keyed on
    (path, mtime). None, with the error shown, when the file is unreadable."""
    try:
        return _metadata(path, os.path.getmtime(path))
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot open this checkpoint: {plain(e)}")
        return None


def open_checkpoint(path: str) -> Checkpoint | None:
    """The model at `path`, loaded (torch) with its dataset checked; None, with the reason shown."""
    from vae_core.data import DatasetError

    try:
        ckpt = load_model(path, os.path.getmtime(path))
    except (CheckpointError, OSError) as e:
        st.error(f"Cannot open this checkpoint: {plain(e)}")
        return None
    try:
        dataset_for(ckpt)
    except DatasetError as e:
        st.error(f"The dataset this model was trained on is not available: {plain(e)}")
        return None
    return ckpt


def current_checkpoint() -> Checkpoint | None:
    """Sidebar picker over the checkpoint cache. Shows a clear message instead of a traceback."""
    path = pick_checkpoint_path()
    return open_checkpoint(path) if path is not None else None


def select_checkpoint(path: str) -> None:
    """Make `path` the open model (e.g. after training); the sidebar picker shows it on its next
    render, so the caller reruns the app (st.rerun(scope="app")) to show it at once."""
    st.session_state[_KEY] = st.session_state[_PENDING] = path


def explorer_link(label: str = "Open it in the explorer") -> None:
    """A link to the explorer page from any page (pages never import each other). The label avoids the
    page's title, so "Latent explorer" still names one link (the sidebar's)."""
    st.page_link(
        st.Page(_no_page, title="Latent explorer", url_path=EXPLORER_PATH), label=label, icon=":material/explore:"
    )


def page_link(url_path: str, title: str, label: str, icon: str) -> None:
    """A link to another page by its url_path (app/views PAGES), without importing it."""
    st.page_link(st.Page(_no_page, title=title, url_path=url_path), label=label, icon=icon)


def _no_page() -> None:
    """A link's target stands for the page app/main.py registers under its url_path:
    Streamlit resolves a link by its url_path, never calls this."""
