"""Run a bench script end to end with --smoke (tiny sizes, no targets) in a subprocess, for the smoke
tests (tests/test_bench_smoke*.py). Results go to a tmp file via --results; the committed
bench/RESULTS.md is never touched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMITTED = os.path.join(ROOT, "bench", "RESULTS.md")
# Hang guards only: a smoke run on a loaded 2-core machine (load average 8+, a first numba JIT in a
# fresh venv) can take many times its usual time, and must not fail for that. CI has its own limit.
HANG_GUARD_S = 1800
UMAP_HANG_GUARD_S = 3600  # four fresh processes each compile UMAP (numba JIT)


def _digest(path: str) -> str | None:
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None


def run_bench(script: str, tmp_path, *args: str, timeout: int = HANG_GUARD_S) -> tuple[str, str]:
    """Run bench/<script> --smoke; returns (stdout, the appended results text)."""
    results = tmp_path / "RESULTS.md"
    before = _digest(COMMITTED)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(
        [sys.executable, os.path.join("bench", script), "--smoke", "--threads", "1", "--results", str(results), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert p.returncode == 0, f"{script} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert _digest(COMMITTED) == before, "a smoke run must not write bench/RESULTS.md"
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "- machine: CPU " in text and "torch " + torch.__version__ in text
    assert "- load average (1/5/15 min): before " in text
    assert "(smoke)" in text
    return p.stdout, text


def have_chromium() -> bool:
    from tests.harness.browser import CHROMIUM

    return os.path.exists(CHROMIUM)
