"""Shared bench plumbing: the machine line, interleaved timing, peak memory, RESULTS.md entries.

Every bench script imports it first (it puts this checkout's root first on sys.path), prints a table
and appends it, with the machine, date and load, to bench/RESULTS.md (or to --results PATH; tests
always pass a tmp path). torch is imported lazily: fresh-process children that measure imports and
RSS must not pay for it here.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
DEFAULT_RESULTS = os.path.join(BENCH_DIR, "RESULTS.md")

# `python bench/x.py` puts only bench/ on sys.path, so vae_core and app would come from wherever the
# venv installed them (another checkout, for an editable install). Every bench script imports this
# module first: from here on this checkout's code wins, and tests.harness is importable.
if sys.path[:1] != [REPO]:
    sys.path[:] = [REPO] + [p for p in sys.path if os.path.abspath(p or os.curdir) != REPO]


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds, no targets checked")
    p.add_argument("--results", default=DEFAULT_RESULTS, help="markdown file the entry is appended to")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    return p


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine_line() -> str:
    import torch

    gpu = gpu_name() or "no GPU"
    return (
        f"CPU {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}"
    )


def load_avg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --- peak memory -----------------------------------------------------------------------------
def _status_kb(field: str, pid: str = "self") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0: write 5 to clear_refs). False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process since start (or the last reset_peak_rss), MiB."""
    return _status_kb("VmHWM") / 1024


def cpu_seconds(pid) -> float:
    """utime + stime of a process, seconds (fields 14 and 15 of /proc/<pid>/stat): the CPU it used,
    whatever else the machine runs."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: str = "self") -> float:
    return _status_kb("VmRSS", pid) / 1024


# --- timing ------------------------------------------------------------------------------------
def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleave(runs: dict[str, Callable[[], dict]], repeats: int) -> dict[str, list[dict]]:
    """Call each run once per round, in the same order (A, B, A, B, ...); returns name -> results."""
    out: dict[str, list[dict]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, fn in runs.items():
            res = fn()
            out[name].append(res)
            print(
                f"  round {r + 1}/{repeats} {name}: "
                + ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in res.items()
                    if not isinstance(v, (list, dict))
                ),
                flush=True,
            )
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a_i / b_i (paired: both sides of a round ran back to back)."""
    return median([x / y for x, y in zip(a, b)])


def timed(fn: Callable[[], object], device="cpu") -> tuple[float, object]:
    sync(device)
    t0 = time.perf_counter()
    res = fn()
    sync(device)
    return time.perf_counter() - t0, res


# --- output ------------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(path: str, title: str, body: str, load_before: str, smoke: bool) -> None:
    """Append one dated entry (machine, load, command line, body) to the results markdown file."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = " ".join(["python", os.path.relpath(sys.argv[0]) if sys.argv[0] else "?", *sys.argv[1:]])
    entry = (
        f"\n## {title}{' (smoke)' if smoke else ''} - {now}\n\n"
        f"- machine: {machine_line()}\n"
        f"- load average (1/5/15 min): before {load_before}, after {load_avg()}\n"
        f"- command: `{cmd}`\n\n{body.strip()}\n"
    )
    new = not os.path.exists(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as fh:
        if new:
            fh.write("# Benchmark results\n\nAppended by the scripts in bench/ (see bench/README.md).\n")
        fh.write(entry)
    print(f"\nappended to {path}")


def setup_threads(n: int) -> None:
    import torch

    if n > 0:
        torch.set_num_threads(n)


def chromium_missing(results: str, title: str, what: str, load_before: str, smoke: bool) -> bool:
    """True (and the reason printed and recorded) when Debian's Chromium is not installed."""
    from tests.harness.browser import CHROMIUM

    if os.path.exists(CHROMIUM):
        return False
    msg = f"{CHROMIUM} is missing: {what} not measured"
    print(msg)
    append_results(results, title, msg, load_before, smoke)
    return True


def shipped_cache_dir(tmp: str) -> str:
    """A fresh cache dir holding what the repo ships for the default model: the checkpoint and its
    projection cache (`<ckpt>.proj.npz`, the map's means and UMAP embedding)."""
    import shutil

    from vae_core.cache import default_checkpoint_path
    from vae_core.projection_cache import cache_path_for

    src = default_checkpoint_path()
    if not os.path.exists(src):
        raise SystemExit(f"error: the shipped checkpoint {src} is missing")
    d = os.path.join(tmp, "shipped")
    os.makedirs(d, exist_ok=True)
    shutil.copy(src, d)
    if os.path.exists(cache_path_for(src)):
        shutil.copy(cache_path_for(src), d)
    return d
