"""Every bench script runs end to end with --smoke (tiny sizes, no targets), in a subprocess.

Results go to a tmp file via --results; the committed bench/RESULTS.md is never touched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def test_train_throughput_smoke(tmp_path):
    out, text = run_bench("train_throughput.py", tmp_path)
    assert "| reference (pytorch/examples) |" in text and "| vae_core fit |" in text
    assert "Compute floor" in text
    # both sides reach a finite test ELBO after one tiny epoch
    row = next(line for line in text.splitlines() if line.startswith("| vae_core fit |"))
    elbo = float(row.split("|")[5].replace(",", ""))
    assert -1000 < elbo < 0


@pytest.mark.slow
def test_train_throughput_nproc_smoke(tmp_path):
    """torchrun on 1 and 2 processes: a row each, the same training (equal test ELBO)."""
    out, text = run_bench("train_throughput.py", tmp_path, "--nproc", "1,2")
    rows = [
        line.split("|")
        for line in text.splitlines()
        if line.startswith("| 1 process") or line.startswith("| 2 processes")
    ]
    assert len(rows) >= 2 and all(float(r[2].replace(",", "")) > 0 for r in rows)
    assert len({r[-2].strip() for r in rows}) == 1  # one test ELBO: the same training on 1 or 2 ranks


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_train_throughput_says_no_gpu(tmp_path):
    out, text = run_bench("train_throughput.py", tmp_path, "--device", "cuda")
    assert out.startswith("no GPU") and "no GPU" in text


def test_projection_smoke(tmp_path):
    out, text = run_bench("projection.py", tmp_path)
    assert "| 300 | new model | PCA fit + transform |" in text
    assert "| 300 | cached | np.load of the cache arrays |" in text
    assert "FAILED" not in text


@pytest.mark.slow
def test_projection_smoke_with_umap(tmp_path):
    out, text = run_bench("projection.py", tmp_path, "--umap", timeout=UMAP_HANG_GUARD_S)
    assert "first fit (numba JIT incl.)" in text and "second fit, same process" in text
    assert "worst stall of the main thread" in text


def test_eval_cost_smoke(tmp_path):
    out, text = run_bench("eval_cost.py", tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| cpu |"))
    mean_log_px = float(row.split("|")[5].replace(",", ""))
    assert -500 < mean_log_px < 0
    assert "Chunk sweep" in text and "aten::addmm" in text


def _have_chromium() -> bool:
    from tests.harness.browser import CHROMIUM

    return os.path.exists(CHROMIUM)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_latency_smoke(tmp_path):
    if not _have_chromium():
        pytest.skip("Chromium is missing (tests/harness/browser.py CHROMIUM)")
    out, text = run_bench("browser_latency.py", tmp_path)
    assert "slider drag: mouse move -> new frame painted" in text
    assert "map click -> sliders show the point" in text


@pytest.mark.browser
@pytest.mark.slow
def test_app_memory_smoke(tmp_path):
    if not _have_chromium():
        pytest.skip("Chromium is missing (tests/harness/browser.py CHROMIUM)")
    out, text = run_bench("app_memory.py", tmp_path)
    assert "server peak RSS (VmHWM)" in text
    assert "(2,000 points)" in text


def test_classroom_smoke(tmp_path):
    """Two simulated students speak Streamlit's websocket protocol to `streamlit run app/main.py`:
    every step (open, click, release, lab page) finishes and shows its effect, with no error."""
    out, text = run_bench("classroom.py", tmp_path, timeout=900)
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9] == "0", row  # errors
    assert all(float(v) > 0 for v in cells[5].split(" / ")), row  # every step timed


def test_conv_drag_smoke(tmp_path):
    out, text = run_bench("conv_drag.py", tmp_path, timeout=900)
    assert "conv: drag at 120 Hz mouse moves" in text or "is missing" in text


def test_export_html_smoke(tmp_path):
    out, text = run_bench("export_html.py", tmp_path, timeout=900)
    assert "| file size |" in text or "is missing" in text


@pytest.mark.browser
@pytest.mark.slow
def test_map_scale_browser_smoke(tmp_path):
    from tests.harness.browser import CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    out, text = run_bench("map_scale.py", tmp_path, "--only", "browser")
    assert "Two-frame floor" in text
    for n in ("300", "2,000"):  # one row per size: renderer, first paint, zoom and pan percentiles
        row = next(line for line in text.splitlines() if line.startswith(f"| {n} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] in ("canvas", "webgl", "webgl2")
        assert all(float(c.replace(",", "")) > 0 for c in cells[2:7])


@pytest.mark.slow
def test_map_scale_umap_smoke(tmp_path):
    out, text = run_bench("map_scale.py", tmp_path, "--only", "umap", timeout=UMAP_HANG_GUARD_S)
    assert "UMAP fit on 500 of 1,500 points" in text
    row = next(line for line in text.splitlines() if "subsample + kNN placement" in line)
    knn, trust = (float(c) for c in row.split("|")[3:5])
    assert 0 < knn <= 1 and 0.5 < trust <= 1
