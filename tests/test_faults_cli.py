"""Fault injection, command line: bad checkpoints, bad arguments and devices, a full disk.

Every failure is one `error:` line on stderr naming the file (or argument) and the problem, a
non-zero exit and nothing on stdout; `list` marks bad files and keeps listing the good ones.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from vae_core import cache, estimators, fsutil
from vae_core.checkpoints import FORMAT, read_metadata, save_checkpoint
from vae_core.cli import main
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.device import pick_device
from vae_core.fsutil import StorageError
from vae_core.model import VAE

TRAIN = [
    "--latent-dim",
    "2",
    "--hidden",
    "16",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--final-iw-samples",
    "5",
    "--device",
    "cpu",
    "--quiet",
]


def _exit(args) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return e.code


def _one_line(text: str, prefix: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in text, text
    return lines[0]


def _checkpoint(tmp_path, tiny_npz, name="m.safetensors", **model_kw) -> str:
    """A checkpoint trained on nothing, for the tiny .npz (evaluate loads that dataset)."""
    data = load_dataset(tiny_npz)
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=data.input_shape, latent_dim=2, hidden=(8,), **model_kw)).eval()
    return save_checkpoint(
        str(tmp_path / "ckpts" / name),
        model,
        TrainConfig(dataset=tiny_npz, epochs=1),
        dataset={"name": "tiny", "fingerprint": data.fingerprint},
        metrics={"elbo": -40.0, "log_likelihood": -39.5},
    )


def _rewrite(good: str, name: str, **fields) -> str:
    """A copy of `good` with some header fields replaced by raw strings."""
    meta = {k: json.dumps(v) for k, v in read_metadata(good).items()} | {"format": FORMAT} | fields
    p = os.path.join(os.path.dirname(good), name)
    save_file(load_file(good), p, metadata=meta)
    return p


BAD_HEADERS = {  # the examples
    "metrics-list.safetensors": ({"metrics": "[]"}, "header field metrics must be a JSON object, got a list"),
    "train-null.safetensors": ({"train_config": "null"}, "header field train_config must be a JSON object, got null"),
    "elbo-abc.safetensors": ({"metrics": '{"elbo": "abc"}'}, "header field metrics.elbo must be a number or null"),
    "dataset-list.safetensors": ({"dataset": "[]"}, "header field dataset must be a JSON object, got a list"),
    "latent-str.safetensors": (
        {
            "model_config": json.dumps(
                ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(8,)).to_dict() | {"latent_dim": "4"}
            )
        },
        "latent_dim must be an int, got a string ('4')",
    ),
}


@pytest.fixture
def mixed_cache(tmp_path, tiny_npz):
    """A cache folder: one good checkpoint, each bad header of the issue, and a truncated file."""
    good = _checkpoint(tmp_path, tiny_npz)
    bad = {_rewrite(good, name, **fields): needle for name, (fields, needle) in BAD_HEADERS.items()}
    trunc = os.path.join(os.path.dirname(good), "truncated.safetensors")
    open(trunc, "wb").write(open(good, "rb").read()[:-9])
    bad[trunc] = "corrupt or truncated"
    return os.path.dirname(good), good, bad


def test_list_marks_each_bad_checkpoint_on_one_line_and_lists_the_good_one(mixed_cache, capsys):
    folder, good, bad = mixed_cache
    assert main(["list", "--cache-dir", folder]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"{good}\n" in out and "test ELBO -40.00 nats, log p(x) -39.50" in out
    for p, needle in bad.items():
        lines = [ln for ln in out.splitlines() if p in ln]
        assert len(lines) == 1 and lines[0].startswith(f"{p}: UNREADABLE: ") and needle in lines[0], out


def test_list_json_is_valid_json_with_one_row_per_file(mixed_cache, capsys):
    folder, good, bad = mixed_cache
    assert main(["list", "--cache-dir", folder, "--json"]) == 0
    rows = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows.keys() == {good, *bad}
    assert (
        set(rows[good]) == {"path", "model_config", "train_config", "dataset", "metrics", "test_elbo", "log_likelihood"}
        and rows[good]["test_elbo"] == -40.0
    )
    for p, needle in bad.items():
        assert (
            set(rows[p]) == {"path", "error"} and rows[p]["error"].startswith(p + ": ") and needle in rows[p]["error"]
        )


def test_list_in_a_real_process_has_no_traceback(mixed_cache, tmp_path):
    folder, good, bad = mixed_cache
    r = subprocess.run(
        [sys.executable, "-m", "vae_core", "list", "--cache-dir", folder],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.count("UNREADABLE") == len(bad) and good in r.stdout


def test_list_shows_stored_strings_as_one_line_of_text(tmp_path, tiny_npz, capsys):
    """A crafted dataset name cannot add lines to the listing or break the terminal's encoding."""
    good = _checkpoint(tmp_path, tiny_npz)
    tc = read_metadata(good)["train_config"] | {"dataset": "evil\nFAKE.safetensors: UNREADABLE \udcff"}
    _rewrite(good, "m.safetensors", train_config=json.dumps(tc))
    assert main(["list", "--cache-dir", os.path.dirname(good)]) == 0
    out = capsys.readouterr().out
    assert "UNREADABLE" not in out.replace("evil\\nFAKE.safetensors: UNREADABLE \\udcff", "")
    assert len(out.splitlines()) == 3  # path, config line, ELBO line


def test_an_unexpected_exception_is_one_error_line(monkeypatch, capsys):
    def broken(*a, **k):
        raise KeyError("model_config")

    monkeypatch.setattr(cache, "list_checkpoints", broken)
    assert main(["list"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and _one_line(err, "error: ") == "error: KeyError: 'model_config'"


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_evaluate_a_bad_header_names_the_file_and_the_field(mixed_cache, capsys, name):
    folder, _, _ = mixed_cache
    p = os.path.join(folder, name)
    assert main(["evaluate", p, "--iw-samples", "5", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and BAD_HEADERS[name][1] in _one_line(err, f"error: {p}: header field ")


def test_evaluate_nan_weights_is_an_error_not_nan_json(tmp_path, tiny_npz, capsys):
    p = _checkpoint(tmp_path, tiny_npz)
    st = load_file(p)
    st["encoder.0.bias"][0] = float("nan")
    save_file(st, p, metadata=_meta_strings(p))
    assert main(["evaluate", p, "--iw-samples", "5", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert (
        out == ""
        and _one_line(err, "error: ") == f"error: {p}: weights contain NaN or inf values (tensor encoder.0.bias)"
    )


def _meta_strings(p):
    return {k: json.dumps(v) for k, v in read_metadata(p).items()} | {"format": FORMAT}


def test_evaluate_non_finite_results_is_an_error_not_nan_json(tmp_path, tiny_npz, capsys):
    """Finite weights, but a Gaussian of sigma 1e-30 overflows: log p(x|z) = -inf."""
    p = _checkpoint(tmp_path, tiny_npz, likelihood="gaussian", sigma=1e-30)
    assert main(["evaluate", p, "--iw-samples", "5", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    line = _one_line(err, f"error: {p}: evaluation gave non-finite values (elbo, recon")
    assert out == "" and "overflow" in line


def test_evaluate_works_and_prints_strict_json(tmp_path, tiny_npz, capsys):
    p = _checkpoint(tmp_path, tiny_npz)
    assert main(["evaluate", p, "--iw-samples", "5", "--n", "7", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 7 and res["iw_samples"] == 5 and res["elbo"] == pytest.approx(res["recon"] - res["kl"], abs=1e-4)


# --- devices ---------------------------------------------------------------------------------


def _unavailable(dev: str) -> bool:
    mps = getattr(torch.backends, "mps", None)
    if dev == "mps":
        return not (mps is not None and mps.is_available())
    if dev == "cuda:7":
        return torch.cuda.device_count() < 8
    return True


@pytest.mark.parametrize("cmd", ["train", "evaluate"])
@pytest.mark.parametrize(
    "dev, needle",
    [
        ("bogus", "unknown device 'bogus': use one of auto, cpu"),
        ("meta", "unknown device 'meta': use one of auto, cpu"),
        ("CPU", "unknown device 'CPU'"),
        ("mps", "device 'mps' requested but MPS is not available; available here: auto, cpu"),
        ("cuda:7", "device 'cuda:7' requested but"),
    ],
)
def test_a_bad_device_is_one_line_listing_what_is_available(tmp_path, tiny_npz, capsys, cmd, dev, needle):
    if not _unavailable(dev):
        pytest.skip(f"{dev} exists on this machine")
    args = (
        ["train", "--dataset", tiny_npz, "--cache-dir", str(tmp_path / "c"), "--quiet"]
        if cmd == "train"
        else ["evaluate", _checkpoint(tmp_path, tiny_npz)]
    )
    assert main([*args, "--device", dev]) == 1
    out, err = capsys.readouterr()
    assert out == "" and needle in _one_line(err, "error: ")
    assert not os.path.exists(tmp_path / "c")  # refused before anything was trained or written


def test_pick_device_accepts_only_usable_names():
    assert pick_device("cpu") == torch.device("cpu") == pick_device(torch.device("cpu"))
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("cuda:", "cpu:0", "", "cuda:99999"):
        with pytest.raises(ValueError, match="device"):
            pick_device(bad)


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["evaluate", "x.safetensors", "--n", "-5"], "argument --n: must be >= 0, got -5"),
        (["evaluate", "x.safetensors", "--n", "abc"], "argument --n: invalid int value: 'abc'"),
        (["evaluate", "x.safetensors", "--mc-samples", "0"], "argument --mc-samples: must be in [1, 100000], got 0"),
        (["evaluate", "x.safetensors", "--mc-samples", "1000000"], "argument --mc-samples: must be in [1, 100000]"),
        (["evaluate", "x.safetensors", "--iw-samples", "-1"], "argument --iw-samples: must be in [0, 100000], got -1"),
        (["train", "--final-iw-samples", "-1"], "argument --final-iw-samples: must be in [0, 100000], got -1"),
    ],
)
def test_out_of_range_arguments_are_usage_errors(capsys, args, needle):
    assert _exit(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in _one_line(err, f"python -m vae_core {args[0]}: error: ")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--mc-samples", "5000"], "mc_samples must be <= 1000"),
        (["--latent-dim", "100000"], "latent_dim must be <= 4096"),
        (["--hidden", "60000,60000"], "parameters, more than the limit of 100,000,000"),
    ],
)
def test_absurd_training_sizes_are_refused_before_training(tmp_path, tiny_npz, capsys, args, needle):
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", str(tmp_path / "c"), "--quiet", *args]) == 1
    assert needle in _one_line(capsys.readouterr().err, "error: ")
    assert not os.path.exists(tmp_path / "c")


def test_evaluate_memory_is_bounded_by_splitting_samples(monkeypatch):
    """Many samples per example run in passes of at most budget_floats decoder outputs, same estimate."""
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,), likelihood="gaussian")).eval()
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    whole = estimators.evaluate(model, x, mc_samples=4000, seed=0)
    sizes = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda z: sizes.append(z.shape[0] * z.shape[1]) or decode(z))
    split = estimators.evaluate(model, x, mc_samples=4000, seed=0, budget_floats=6 * 4 * 100)  # 100 samples x 4
    assert len(sizes) == 40 and max(sizes) == 400
    assert split["recon"] == pytest.approx(whole["recon"], abs=0.05)  # two 4000-sample estimates
    assert split["kl"] == whole["kl"]  # closed form, no sampling
    with pytest.raises(ValueError, match=r"mc_samples must be in \[1, 100000\], got 100001"):
        estimators.evaluate(model, x, mc_samples=100_001)
    with pytest.raises(ValueError, match=r"iw_samples must be in \[0, 100000\]"):
        estimators.evaluate(model, x, iw_samples=-1)


# --- storage ---------------------------------------------------------------------------------


class _DiskFull(io.FileIO):
    def write(self, b):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_train_on_a_full_disk_is_one_error_line_and_leaves_nothing(tmp_path, tiny_npz, monkeypatch, capsys):
    folder = tmp_path / "c"
    monkeypatch.setattr(fsutil, "open", lambda f, mode="r": _DiskFull(f, mode.replace("b", "")), raising=False)
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", str(folder), *TRAIN]) == 1
    out, err = capsys.readouterr()
    line = _one_line(err, f"error: {folder}{os.sep}tiny-npz_mlp_elbo_z2_")
    assert out == "" and line.endswith(
        ".safetensors: could not be written (No space left on device); nothing was changed"
    )
    assert os.listdir(folder) == []  # no checkpoint, no temp file, no lock


def test_train_when_only_the_map_cache_fails_warns_and_succeeds(tmp_path, tiny_npz, monkeypatch, capsys):
    """The checkpoint is saved, its .proj.npz is not: the model is cached, so exit 0 and one warning."""
    from vae_core import projection_build, projection_cache

    def full(path, *a, **k):
        p = projection_cache.cache_path_for(path)
        raise StorageError(errno.ENOSPC, f"{p}: could not be written (No space left on device); nothing was changed")

    monkeypatch.setattr(projection_build, "build_cache", full)
    folder = str(tmp_path / "c")
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", folder, *TRAIN]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert res["cached"] is False and os.path.isfile(res["checkpoint"])
    line = _one_line(err, "warning: the model is cached, but its latent map cache was not saved (")
    assert ".proj.npz: could not be written (No space left on device)" in line
    assert main(["train", "--dataset", tiny_npz, "--cache-dir", folder, *TRAIN]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True  # the model is there
