"""Every compute bench script runs end to end with --smoke (tiny sizes, no targets), in a subprocess.
The scripts that serve the app or drive a browser are in test_bench_smoke_app.py: two files, so that
pytest's two workers (-n 2 --dist loadfile) share the bench smokes.
"""

from __future__ import annotations

import pytest
import torch

from tests.harness.bench_run import UMAP_HANG_GUARD_S, run_bench


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


@pytest.mark.slow
def test_map_scale_umap_smoke(tmp_path):
    out, text = run_bench("map_scale.py", tmp_path, "--only", "umap", timeout=UMAP_HANG_GUARD_S)
    assert "UMAP fit on 500 of 1,500 points" in text
    row = next(line for line in text.splitlines() if "subsample + kNN placement" in line)
    knn, trust = (float(c) for c in row.split("|")[3:5])
    assert 0 < knn <= 1 and 0.5 < trust <= 1
