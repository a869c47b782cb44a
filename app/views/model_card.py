"""Model card: the open model's data, architecture, objective, results and reproduce command
(vae_core.model_card), shown as text and offered as a Markdown download."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from app.common import checkpoint_metadata, pick_checkpoint_path
from app.safe import plain
from vae_core.model_card import card_sections, model_card, sha256_file


@st.cache_data(max_entries=8, show_spinner="Hashing the checkpoint…")
def _sha256(path: str, mtime: float) -> str:
    return sha256_file(path)


def render() -> None:
    st.title("Model card")
    path = pick_checkpoint_path()
    meta = checkpoint_metadata(path) if path is not None else None
    if meta is None:
        return
    try:
        sha = _sha256(path, os.path.getmtime(path))
    except OSError as e:
        st.error(f"Cannot read this checkpoint: {plain(e)}")
        return
    name = os.path.basename(path)
    sections = card_sections(meta, sha256=sha, file_name=name)
    st.caption(plain(name))
    for title, rows in sections:
        st.subheader(plain(title))
        command = dict(rows).pop("reproduce", None)
        table = [(f, v) for f, v in rows if f != "reproduce"]
        # st.table wraps long values; its cells are Markdown, so every one is escaped to show as typed
        st.table(
            pd.DataFrame({"value": [plain(v) for _f, v in table]}, index=[plain(f) for f, _v in table]),
            border="horizontal",
        )
        if command is not None:
            st.caption("Reproduce (a cache hit when this checkpoint is in the cache):")
            st.code(command, language="bash", wrap_lines=True)
    st.download_button(
        "Download the model card (Markdown)",
        model_card(meta, sha256=sha, file_name=name),
        file_name=name.removesuffix(".safetensors") + ".model-card.md",
        mime="text/markdown",
        icon=":material/download:",
        key="model_card_download",
    )
