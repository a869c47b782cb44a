"""Lab reports on disk, beside the checkpoint they were computed from.

A lab report is deterministic given the checkpoint's bytes, the page's parameters and the seed, so
it is computed once and kept as `<checkpoint>.lab-<page>-<key>.npz`, key = sha256 of
(FORMAT, page, every checkpoint's sha256, the parameters). The file is disposable: a missing,
damaged or foreign one is ignored and rebuilt, never an error.

File layout (np.savez, no pickles): "tree" () str, a JSON tree of the report, where each array is
replaced by {"a": name} and stored under that name; dataclasses are {"d": {field: node}}, dicts
{"m": {key: node}}, lists and tuples {"l": [node, ...]}, and numbers, strings and None are
themselves (NaN included). Reading rebuilds dataclasses from the type hints of the class the
caller expects, so a file can name no code to run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
import warnings
import zipfile
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from ..fsutil import atomic_write

FORMAT = 1  # part of every key: bump it when a report's fields or their meaning change, so files
# written by older code (the shipped ones included) are no longer found and get rebuilt
MAX_BYTES = 1 << 28  # uncompressed arrays of one report; a real one is well under 10 MB
T = TypeVar("T")


class ReportCacheWarning(UserWarning):
    """A lab report file was ignored (damaged, or not what the page expects); it is rebuilt."""


class BadReport(Exception):
    """Why a report file cannot be used."""


def report_key(page: str, checkpoint_shas: list[str], params: dict) -> str:
    """16 hex digits naming one report; params must be JSON data (numbers, strings, lists)."""
    blob = json.dumps([FORMAT, page, list(checkpoint_shas), params], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def report_path(checkpoint_path: str, page: str, key: str) -> str:
    base = checkpoint_path[: -len(".safetensors")] if checkpoint_path.endswith(".safetensors") else checkpoint_path
    return f"{base}.lab-{page}-{key}.npz"


# --- codec ----------------------------------------------------------------------------------------


def _encode(obj, arrays: dict):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"d": {f.name: _encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj)}}
    if isinstance(obj, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"a": name}
    if isinstance(obj, dict):
        return {"m": {str(k): _encode(v, arrays) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        return {"l": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a lab report cannot hold {type(obj).__name__}")


def _args(hint) -> tuple:
    """The member types of a hint: dict[str, X] -> (str, X); tuple[X, ...] -> (X, ...); X | None -> (X, None)."""
    return tuple(a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis)


def _dataclass_in(hint):
    if dataclasses.is_dataclass(hint):
        return hint
    return next((a for a in _args(hint) if dataclasses.is_dataclass(a)), None)


def _decode(node, hint, arrays: dict):
    if isinstance(node, dict) and "a" in node:
        if node["a"] not in arrays:
            raise BadReport(f"array {node['a']!r} is missing")
        return arrays[node["a"]]
    if isinstance(node, dict) and "d" in node:
        cls = _dataclass_in(hint)
        if cls is None:
            raise BadReport(f"a record where {hint} was expected")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(node["d"]) != sorted(names):
            raise BadReport(f"{cls.__name__} fields differ: {sorted(node['d'])}")
        return cls(**{n: _decode(node["d"][n], hints[n], arrays) for n in names})
    if isinstance(node, dict) and "m" in node:
        value = (_args(hint) or (None, None))[-1]
        return {k: _decode(v, value, arrays) for k, v in node["m"].items()}
    if isinstance(node, dict) and "l" in node:
        item = (_args(hint) or (None,))[0]
        out = [_decode(v, item, arrays) for v in node["l"]]
        return tuple(out) if typing.get_origin(hint) is tuple or hint is tuple else out
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise BadReport(f"unexpected node {str(node)[:80]}")


def save_report(path: str, report) -> str:
    """Write `report` (a dataclass of arrays, numbers, dicts, lists, nested dataclasses) atomically."""
    arrays: dict = {}
    tree = json.dumps(_encode(report, arrays))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, tree=np.array(tree), **arrays)

    return atomic_write(path, write)


def load_report(path: str, cls: type[T], max_bytes: int = MAX_BYTES) -> T:
    """The report in `path` as a `cls`. FileNotFoundError if absent, BadReport if unusable."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    try:
        with zipfile.ZipFile(path) as z:  # sizes from the zip directory, before anything is inflated
            if sum(i.file_size for i in z.infolist()) > max_bytes:
                raise BadReport(f"larger than {max_bytes:,} bytes")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        tree = json.loads(str(arrays.pop("tree")))
    except BadReport:
        raise
    except Exception as e:  # BadZipFile, zlib.error, EOFError, KeyError, ValueError, JSONDecodeError...
        raise BadReport(f"unreadable ({type(e).__name__}: {e})") from None
    try:
        return _decode(tree, cls, arrays)
    except BadReport:
        raise
    except (TypeError, KeyError, AttributeError) as e:
        raise BadReport(f"not a {cls.__name__} ({type(e).__name__}: {e})") from None


def cached_report(path: str, cls: type[T], compute: Callable[[], T]) -> T:
    """The report stored at `path`, or compute() stored there (a bad file is ignored with a
    ReportCacheWarning and replaced). A folder that cannot be written still returns the report."""
    try:
        return load_report(path, cls)
    except FileNotFoundError:
        pass
    except BadReport as e:
        warnings.warn(f"{path}: {e}; recomputing it", ReportCacheWarning, stacklevel=2)
    report = compute()
    try:
        save_report(path, report)
    except OSError as e:  # a read-only checkpoint folder: the page works, only slower next time
        warnings.warn(f"{path}: not saved ({e})", ReportCacheWarning, stacklevel=2)
    return report
