"""Training replay: the open model's per-epoch snapshots (vae_core.replay), played in the browser.

All snapshots go to the browser once per session (app.components.replay_player): Play / Pause, the
player's own slider and a click on its ELBO chart run without a server round trip. The Epoch scrubber
above it is the server's: moving it shows that epoch's numbers and moves the player there.
"""

from __future__ import annotations

import os

import streamlit as st

from app.common import checkpoint_metadata, pick_checkpoint_path
from app.components.replay_player import PlayerData, player_data, replay_player, seek_index
from app.safe import plain
from vae_core import cache as cache_module
from vae_core.checkpoints import CheckpointError, read_metadata
from vae_core.constants import KL_COLLAPSED_NATS
from vae_core.replay import Replay, ReplayError, load_replay, replay_path, with_replays

_EPOCH = "replay_epoch"  # session-state key of the scrubber
_PLAYER = "replay_player"


def _follow_player(epochs: list[int]) -> None:
    """on_seek: the player stopped at another snapshot; the scrubber (and so the numbers) go there too."""
    i = seek_index(_PLAYER, len(epochs))
    if i is not None:
        st.session_state[_EPOCH] = epochs[i]


@st.cache_data(max_entries=4, show_spinner="Reading the training replay…")
def _load(path: str, mtime: float) -> Replay:
    return load_replay(path)


@st.cache_data(max_entries=4, show_spinner=False)
def _sha256(path: str, mtime: float) -> str:
    from vae_core.model_card import sha256_file

    return sha256_file(path)


@st.cache_resource(max_entries=4, show_spinner=False)  # the page's st.spinner: warm() runs it off-script
def _built(path: str, mtime: float, input_shape: tuple) -> PlayerData:
    """The player's data for replay file `path` (its image sheet: ~0.5 s). Built once per file and shared
    by every session, unpickled by none: read-only."""
    return player_data(_load(path, mtime), input_shape)


def warm(path: str) -> None:
    """Build checkpoint `path`'s replay player data into the cache, if it has a readable replay: run in a
    background thread (app/main.py), so the first student to open the page does not wait for it."""
    rpath = replay_path(path)
    if os.path.exists(rpath):
        _built(rpath, os.path.getmtime(rpath), tuple(read_metadata(path)["model_config"]["input_shape"]))


def _provenance(r: Replay, meta: dict, sha: str) -> None:
    """Say whose training this is: this file's, or a re-run of its configs (then with both ELBOs)."""
    mine = (meta.get("metrics") or {}).get("elbo")
    theirs = (r.meta.get("final_metrics") or {}).get("elbo")
    if r.meta.get("checkpoint_sha256") != sha:
        st.warning(
            "This replay was recorded for another file with the same configuration (the checkpoint "
            "has been replaced since): it shows how this configuration trains, not these exact weights."
        )
    elif r.meta["source"] == "rerun":
        nums = (
            f" Its final test ELBO is {theirs:.2f} nats; this checkpoint's is {mine:.2f}."
            if isinstance(mine, (int, float)) and isinstance(theirs, (int, float))
            else ""
        )
        st.info(
            "Recorded by training this configuration again with the same seed: the re-run's weights are "
            "not bit-identical to this checkpoint's (for example, it was trained by an earlier version of the "
            "training loop), so the replay shows how this configuration trains, not these exact weights." + nums
        )
    else:
        st.caption("Recorded while this checkpoint trained.")


def _lab_choices() -> dict[str, str]:
    """{checkpoint path: label} for the lab's models that have a replay (checkpoints/lab/)."""
    out = {}
    for p in with_replays(os.path.join(cache_module.default_cache_dir(), "lab")):
        try:
            tc = read_metadata(p)["train_config"]
        except CheckpointError:
            continue  # an unreadable lab file is the lab pages' business; it is simply not offered here
        extras = "".join(
            [
                f", warm-up {tc['warmup_epochs']:g} epochs" if tc["warmup_epochs"] else "",
                f", free bits {tc['free_bits']:g}" if tc["free_bits"] else "",
            ]
        )
        out[p] = f"Lab model: {tc['objective']} β = {tc['beta']:g}{extras}, {tc['epochs']} epochs"
    return out


def _chosen_path() -> str | None:
    """The checkpoint whose replay is shown: the open model's, or a lab model's picked in "Replay of"."""
    path = pick_checkpoint_path()
    labs = _lab_choices()
    if labs:  # options are the labels themselves (unique), so the widget's value is plain text
        choices = ({"The open model (sidebar)": path} if path is not None else {}) | {v: k for k, v in labs.items()}
        path = choices[st.selectbox("Replay of", list(choices), key="replay_source")]
    return path


def _checked_replay(path: str, meta: dict) -> tuple[str, Replay] | None:
    """(replay file, replay) when the checkpoint has a readable replay of its own configs; else one message."""
    rpath = replay_path(path)
    if not os.path.exists(rpath):
        st.info(
            "This model has no training replay. Models trained with the command line's --replay flag "
            "record one (python -m vae_core train ... --replay); the shipped model and the lab's β = 10 "
            "model have theirs."
        )
        return None
    try:
        r = _load(rpath, os.path.getmtime(rpath))
    except (ReplayError, OSError) as e:
        st.error(f"The training replay of this model cannot be shown: {plain(e)}")
        return None
    if (r.meta.get("model_config"), r.meta.get("train_config")) != (meta["model_config"], meta["train_config"]):
        st.error(
            f"The replay file {plain(os.path.basename(rpath))} was recorded for a different model "
            f"configuration than this checkpoint's, so it is not shown."
        )
        return None
    return rpath, r


def _epoch_numbers(r: Replay, epochs: list[int]) -> int:
    """The Epoch scrubber and that epoch's four numbers; returns the chosen snapshot's index."""
    if st.session_state.get(_EPOCH) not in epochs:
        st.session_state[_EPOCH] = epochs[0]
    e = st.select_slider(
        "Epoch",
        options=epochs,
        key=_EPOCH,
        help="Shows the chosen epoch's numbers and moves the player below to that epoch; "
        "its Play, Pause and slider run in the browser.",
    )
    i = epochs.index(e)
    alive = int((r.kl_per_dim[i] >= KL_COLLAPSED_NATS).sum())
    cols = st.columns(4)
    cols[0].metric(f"Test ELBO, epoch {e}", f"{r.elbo[i]:.2f}")
    cols[1].metric("E_q log p(x|z)", f"{r.recon_nats[i]:.2f}")
    cols[2].metric("KL(q ‖ p)", f"{r.kl[i]:.2f}")
    cols[3].metric(
        "Dims alive",
        f"{alive} of {r.kl_per_dim.shape[1]}",
        help=f"latent dimensions whose KL is at least {KL_COLLAPSED_NATS:g} nats (below: collapsed)",
    )
    return i


def render() -> None:
    """The Training replay page: source, provenance, epoch numbers, then the player."""
    st.title("Training replay")
    path = _chosen_path()
    meta = checkpoint_metadata(path) if path is not None else None
    if meta is None:
        return
    checked = _checked_replay(path, meta)
    if checked is None:
        return
    rpath, r = checked
    _provenance(r, meta, _sha256(path, os.path.getmtime(path)))
    epochs = [int(e) for e in r.epochs]
    i = _epoch_numbers(r, epochs)
    with st.spinner("Preparing the replay…"):  # shown only past 0.5 s: a build, not a cache hit
        data = _built(rpath, os.path.getmtime(rpath), tuple(meta["model_config"]["input_shape"]))
    replay_player(data, i, key=_PLAYER, on_seek=lambda: _follow_player(epochs))
    st.caption(
        f"{len(epochs)} snapshots of {len(r.index):,} test points. Each epoch's means are rotated onto "
        "the final epoch's (orthogonal Procrustes) and drawn in the final epoch's PCA frame, so the map "
        "moves only as the encoder learns. Images: the decoder means of the same prior draws z at every "
        "epoch (top) and fixed test images above their reconstructions (bottom)."
    )
