"""The lab's Vega-Lite chart specs on disk, beside the report they are drawn from.

Building a chart with altair and converting it (app.lab.charts.vega_lite) costs 0.05-0.3 s a chart in
Python: most of a lab page's first visit after a server start (lab 2 draws four charts, ~1 s on the
2-core machine). A spec is a function of its report, its name and the code that draws it, so it is kept
as `<report file without .npz>.view-<key>.json`, key = sha256 of (FORMAT, the view's name, the sources of
the files that draw it, altair's and Streamlit's versions): editing a chart's code names a new file. The
file is disposable: a missing, damaged or foreign one is ignored and rebuilt; a folder that cannot be
written keeps the spec in memory only.

File (JSON, no code): {"format": FORMAT, "spec": the spec without its datasets,
"datasets": {name: base64 of its Arrow IPC bytes}}.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable

import altair as alt
import streamlit as st

from app.lab.report_store import report_file
from vae_core.fsutil import atomic_write_bytes

FORMAT = 1
MAX_BYTES = 1 << 25  # a lab chart's file is well under 1 MB


@functools.cache
def _source_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def spec_key(name: str, code_files: list[str]) -> str:
    """16 hex digits naming a view: its name, the code that draws it, the libraries that convert it."""
    parts = [FORMAT, name, [_source_sha(f) for f in sorted(set(code_files))], alt.__version__, st.__version__]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def spec_path(report_path: str, key: str) -> str:
    base = report_path[: -len(".npz")] if report_path.endswith(".npz") else report_path
    return f"{base}.view-{key}.json"


def encode(spec: dict) -> bytes | None:
    """The file's bytes, or None for a spec this format cannot hold (a dataset that is not bytes)."""
    datasets = spec.get("datasets") or {}
    if not all(isinstance(v, bytes) for v in datasets.values()):
        return None
    rest = {k: v for k, v in spec.items() if k != "datasets"}
    blob = {"format": FORMAT, "spec": rest, "datasets": {k: base64.b64encode(v).decode() for k, v in datasets.items()}}
    return json.dumps(blob, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    """The spec a file holds; ValueError for anything else."""
    blob = json.loads(data)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError("not a lab chart file of this format")
    spec, datasets = blob.get("spec"), blob.get("datasets")
    if not isinstance(spec, dict) or not isinstance(datasets, dict):
        raise ValueError("no spec or datasets")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in datasets.items()):
        raise ValueError("datasets must be base64 strings")
    try:
        return {**spec, "datasets": {k: base64.b64decode(v, validate=True) for k, v in datasets.items()}}
    except binascii.Error as e:
        raise ValueError(f"bad base64: {e}") from None


def _read(path: str) -> dict | None:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return None
        with open(path, "rb") as f:
            return decode(f.read())
    except (OSError, ValueError):  # missing, unreadable, damaged or foreign: rebuilt
        return None


def stored_spec(report, name: str, build: Callable[[], dict], code: list[str]) -> dict:
    """build()'s spec for `report`, from its file if there is one, else built and stored. code: the
    source files build() depends on besides the report (the page's, the chart helpers')."""
    rpath = report_file(report)
    if rpath is None:  # not a stored report: nowhere to keep it
        return build()
    report_code = inspect.getsourcefile(type(report))  # its methods may compute what a chart shows
    path = spec_path(rpath, spec_key(name, [f for f in (*code, report_code) if f]))
    spec = _read(path)
    if spec is not None:
        return spec
    spec = build()
    data = encode(spec)
    if data is not None:
        try:
            atomic_write_bytes(path, data)
        except OSError:  # StorageError included: a read-only folder; this process keeps it in memory
            pass
    return spec
