"""`python -m vae_core` end to end on a tiny .npz, and one clear stderr line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from vae_core.checkpoints import load_checkpoint
from vae_core.cli import main
from vae_core.data import eval_targets, load_dataset
from vae_core.estimators import evaluate

TRAIN = [
    "--latent-dim",
    "2",
    "--hidden",
    "16",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--final-iw-samples",
    "20",
    "--device",
    "cpu",
]


def _run(args, tmp_path, timeout=600):  # a hang guard only
    env = dict(
        os.environ,
        VAE_DATA_CACHE=str(tmp_path / "data-cache"),
        VAE_CHECKPOINT_DIR=str(tmp_path / "default-ckpts"),
        OMP_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "vae_core", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tmp_path,
    )


def _json_line(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.slow
def test_train_evaluate_list_end_to_end(tmp_path, tiny_npz, capsys):
    cache = str(tmp_path / "ckpts")
    r = _run(["train", "--dataset", tiny_npz, "--cache-dir", cache, *TRAIN], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "2/2" in r.stderr  # the tqdm progress bar
    t = _json_line(r.stdout)
    assert t["cached"] is False and os.path.dirname(t["checkpoint"]) == cache
    assert t["test_elbo"] == pytest.approx(t["test_recon"] - t["test_kl"], abs=1e-4)
    assert t["iw_samples"] == 20 and "stochastically binarized" in t["target"]  # bernoulli -> dynamic

    r = _run(["evaluate", t["checkpoint"], "--iw-samples", "200", "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr
    e = _json_line(r.stdout)
    assert {"elbo", "recon", "kl", "log_likelihood", "kl_per_dim", "active_units", "iw_samples", "n"} <= set(e)
    assert e["n"] == 32 and e["iw_samples"] == 200 and len(e["kl_per_dim"]) == 2
    assert e["elbo"] == pytest.approx(e["recon"] - e["kl"], abs=1e-4)
    assert sum(e["kl_per_dim"]) == pytest.approx(e["kl"], abs=1e-4) and e["kl"] >= 0
    assert e["log_likelihood"] >= e["elbo"] - 0.5 and e["log_likelihood"] < 0
    assert 0 <= e["active_units"] <= 2
    # the same numbers in-process: the CLI evaluates the right model on the right targets
    ck = load_checkpoint(t["checkpoint"])
    x = eval_targets(load_dataset(tiny_npz).x_test, ck.train_config.binarize)
    ref = evaluate(ck.model, x, iw_samples=200, seed=0)
    assert e["elbo"] == pytest.approx(ref["elbo"], abs=1e-5)
    assert e["log_likelihood"] == pytest.approx(ref["log_likelihood"], abs=1e-5)

    # list, in-process (an interpreter start-up costs seconds on a busy machine)
    assert main(["list", "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert t["checkpoint"] in out and f"test ELBO {t['test_elbo']:.2f} nats" in out


def test_cache_hit_and_list_json_in_process(tmp_path, tiny_npz, capsys):
    cache = str(tmp_path / "ckpts")
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", cache, "--quiet", *TRAIN]) == 0
    first = _json_line(capsys.readouterr().out)
    out = tmp_path / "copy.safetensors"
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", cache, "--quiet", "--out", str(out), *TRAIN]) == 0
    second = _json_line(capsys.readouterr().out)
    assert second["cached"] is True and second["checkpoint"] == first["checkpoint"]
    assert second["test_elbo"] == first["test_elbo"] and out.read_bytes() == open(first["checkpoint"], "rb").read()
    assert main(["list", "--cache-dir", cache, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [first["checkpoint"]] and rows[0]["test_elbo"] == first["test_elbo"]
    assert main(["list", "--cache-dir", str(tmp_path / "empty")]) == 0
    assert "no checkpoints in" in capsys.readouterr().out


def test_help_via_the_module_entry_point(tmp_path):
    r = _run(["--help"], tmp_path)
    assert r.returncode == 0 and all(c in r.stdout for c in ("train", "evaluate", "list"))


@pytest.mark.parametrize("cmd, needle", [("train", "--free-bits"), ("evaluate", "--iw-samples"), ("list", "--json")])
def test_help_for_each_command(cmd, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and needle in capsys.readouterr().out


def _corrupt(tmp_path):
    p = tmp_path / "corrupt.safetensors"
    p.write_bytes(os.urandom(256))
    return str(p)


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["train", "--dataset", "no-such-set", "--quiet"], 1, "error: unknown dataset 'no-such-set'"),
        (["train", "--dataset", "missing.npz", "--quiet"], 1, "error: missing.npz: no such .npz file"),
        (
            ["train", "--hidden", "4x,3"],
            2,
            "error: argument --hidden: hidden widths: comma-separated positive integers",
        ),
        (["train", "--beta", "-1"], 1, "error: beta must be >= 0, got -1.0"),
        (["train", "--epochs", "0"], 1, "error: epochs must be >= 1"),
        (["train", "--likelihood", "poisson"], 2, "error: argument --likelihood: invalid choice: 'poisson'"),
        (["train", "--latent-dim", "two"], 2, "error: argument --latent-dim: invalid int value: 'two'"),
        (["train", "--dataset", "TINY", "--arch", "conv", "--quiet"], 1, "error: the conv arch takes 28x28 or 32x32"),
        # options an objective would silently ignore are refused, before any data is read
        (
            ["train", "--dataset", "no-such-set", "--objective", "iwae", "--beta", "4"],
            1,
            (
                "error: objective 'iwae' does not use beta=4: leave it at the default (beta=1, warmup_epochs=0, "
                "free_bits=0, mc_samples=1)"
            ),
        ),
        (["train", "--objective", "iwae", "--mc-samples", "3"], 1, "error: objective 'iwae' does not use mc_samples=3"),
        (
            ["train", "--objective", "mmd", "--warmup", "2", "--free-bits", "0.5", "--mc-samples", "4"],
            1,
            (
                "error: objective 'mmd' does not use warmup_epochs=2, free_bits=0.5: leave them at the default "
                "(beta=1, warmup_epochs=0, free_bits=0)"
            ),
        ),
        (["train", "--objective", "ae", "--beta", "0.5"], 1, "error: objective 'ae' does not use beta=0.5"),
        (["evaluate", "CORRUPT"], 1, "corrupt.safetensors: not a readable safetensors checkpoint"),
        (["evaluate", "nope.safetensors"], 1, "error: nope.safetensors: no such checkpoint file"),
        (["evaluate"], 2, "error: the following arguments are required: checkpoint"),
        (["frobnicate"], 2, "error: argument cmd: invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_exits_nonzero_with_one_clear_line(tmp_path, tiny_npz, monkeypatch, capsys, args, code, needle):
    monkeypatch.chdir(tmp_path)
    args = [{"CORRUPT": _corrupt(tmp_path), "TINY": tiny_npz}.get(a, a) for a in args]
    try:
        rc = main(args)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    assert rc == code
    err = capsys.readouterr().err
    assert needle in _one_error_line(err)


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    r = _run(["evaluate", _corrupt(tmp_path)], tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "not a readable safetensors checkpoint" in _one_error_line(r.stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_device_without_a_gpu(tmp_path, tiny_npz, capsys):
    assert main(["train", "--dataset", tiny_npz, "--quiet", "--device", "cuda", "--cache-dir", str(tmp_path)]) == 1
    assert "CUDA is not available" in _one_error_line(capsys.readouterr().err)
