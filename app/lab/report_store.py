"""Where the lab pages get their reports: computed once per server for every session, and once per
checkpoint on disk (vae_core.lab.report_cache), so a page opens from stored numbers after its
first visit, even after a server restart.

    r = lab_report("lab4-sweep", paths, {"n_show": 10, "seed": 0}, SweepReport,
                   lambda: sweep_report(models, x))

A report is deterministic given the checkpoints' bytes and params (the seed included), so every
student sees the same numbers, and a class opening a page together waits for one computation.
What a page draws from a report alone (a Plotly figure, an image mosaic) is built once per report
too, with `view(report, name, build)`: building a figure object costs far more than sending it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from vae_core.lab.report_cache import cached_report, report_key, report_path
from vae_core.projection_cache import file_sha

T = TypeVar("T")
V = TypeVar("V")


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
            for k in old[: max(0, len(old) - keep + 1)]:
                del store[k]
            entry = store[(page, key)] = [threading.Lock(), None]
    with entry[0]:  # the first session computes; the others wait for its result
        if entry[1] is None:
            entry[1] = compute()
        return entry[1]


def lab_report(page: str, paths: list[str], params: dict, cls: type[T], compute: Callable[[], T], keep: int = 8) -> T:
    """The `cls` report of `page` for the checkpoint files `paths` and `params` (JSON data, seed
    included): from memory, else from `<paths[0]>.lab-<page>-<key>.npz`, else compute() (then
    stored in both). compute() is where models are loaded: a stored report needs no torch work."""
    shas = [_sha(p, os.path.getmtime(p)) for p in paths]
    key = report_key(page, shas, params)
    path = report_path(paths[0], page, key)
    report = _memo(page, key, lambda: cached_report(path, cls, compute), keep)
    _remember_file(report, path)
    return report


_FILE = "\0file"  # the views-table entry of a report's file (no view is named so)


def _remember_file(report, path: str) -> None:
    views, lock = _shared_views()
    with lock:
        if (id(report), _FILE) not in views:
            _forget_with(report, views, lock)
            views[(id(report), _FILE)] = path


def report_file(report) -> str | None:
    """The file `report` (from lab_report) is stored in, or None (a report made elsewhere)."""
    views, lock = _shared_views()
    with lock:
        return views.get((id(report), _FILE))


@st.cache_resource(show_spinner=False)
def _shared_views() -> tuple[dict, threading.RLock]:
    """Process-wide: (id(report), name) -> a view of that report, and (id(report), _FILE) -> the file
    it is stored in; an entry goes with its report.
    Reentrant: a report may be collected (and its views dropped) while this thread holds the lock."""
    return {}, threading.RLock()


def _drop_views(views: dict, lock: threading.RLock, rid: int) -> None:
    with lock:
        for k in [k for k in views if k[0] == rid]:
            del views[k]


def view(report, name: str, build: Callable[[], V]) -> V:
    """build(), once per report object (from lab_report) and `name`; shared by every session, so
    treat it as read-only. `name` must say everything build() depends on besides the report."""
    views, lock = _shared_views()
    key = (id(report), name)
    with lock:
        if key in views:
            return views[key]
    value = build()  # outside the lock: two sessions may build the same view once each, harmlessly
    with lock:
        _forget_with(report, views, lock)
        return views.setdefault(key, value)


def _forget_with(report, views: dict, lock) -> None:
    """Drop the report's entries when it is collected: registered with its first entry (lock held)."""
    if not any(k[0] == id(report) for k in views):
        weakref.finalize(report, _drop_views, views, lock, id(report))
