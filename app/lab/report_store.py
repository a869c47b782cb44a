"""Where the lab pages get their reports: computed once per server for every session, and once per
checkpoint on disk (vae_core.lab.report_cache), so a page opens from stored numbers after its
first visit, even after a server restart.

    r = lab_report("lab4-sweep", ckpts, {"n_show": 10, "seed": 0}, SweepReport,
                   lambda: sweep_report(models, x))

A report is deterministic given the checkpoints' bytes and params (the seed included), so every
student sees the same numbers, and a class opening a page together waits for one computation.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, TypeVar

import streamlit as st

from vae_core.checkpoints import Checkpoint
from vae_core.lab.report_cache import cached_report, report_key, report_path
from vae_core.projection import file_sha

T = TypeVar("T")


@st.cache_data(max_entries=64, show_spinner=False)
def _sha(path: str, mtime: float) -> str:
    return file_sha(path)


@st.cache_resource(show_spinner=False)
def _shared_results() -> tuple[dict, threading.Lock]:
    """Process-wide: (page, key) -> [lock, result]. Shared by every session."""
    return {}, threading.Lock()


def _memo(page: str, key: str, compute: Callable[[], T], keep: int) -> T:
    """compute() once per (page, key) in this server process; the last `keep` results per page stay.
    Not st.cache_data: compute may draw a progress bar, which cache_data cannot replay."""
    store, lock = _shared_results()
    with lock:
        entry = store.get((page, key))
        if entry is None:
            old = [k for k in store if k[0] == page]
            for k in old[:max(0, len(old) - keep + 1)]:
                del store[k]
            entry = store[(page, key)] = [threading.Lock(), None]
    with entry[0]:  # the first session computes; the others wait for its result
        if entry[1] is None:
            entry[1] = compute()
        return entry[1]


def lab_report(page: str, ckpts: list[Checkpoint], params: dict, cls: type[T], compute: Callable[[], T],
               keep: int = 8) -> T:
    """The `cls` report of `page` for `ckpts` and `params` (JSON data, seed included): from memory,
    else from `<ckpts[0]>.lab-<page>-<key>.npz`, else compute() (then stored in both)."""
    shas = [_sha(c.path, os.path.getmtime(c.path)) for c in ckpts]
    key = report_key(page, shas, params)
    path = report_path(ckpts[0].path, page, key)
    return _memo(page, key, lambda: cached_report(path, cls, compute), keep)
