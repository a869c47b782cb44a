"""Fault injection, checkpoints: every bad header field, absurd sizes, NaN weights, a full disk.

Each bad file gives one CheckpointError line naming the file and the field, read_metadata and
load_checkpoint agree, and the cache listing shows it as one bad row while the good ones stay.
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

from vae_core import cache, fsutil
from vae_core.checkpoints import FORMAT, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from vae_core.config import MAX_PARAMETERS, ModelConfig, TrainConfig
from vae_core.fsutil import StorageError
from vae_core.model import VAE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCFG = ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,))
GOOD_META = {
    "history": [{"epoch": 1, "test_elbo": -4.5, "test_kl_per_dim": [0.5, 0.25]}],
    "dataset": {"name": "tiny", "fingerprint": "abc", "n_train": 8, "n_test": 4, "input_shape": [6]},
    "metrics": {
        "elbo": -4.0,
        "recon": -3.0,
        "kl": 1.0,
        "kl_per_dim": [0.5, 0.5],
        "active_units": 2,
        "n": 4,
        "iw_samples": 10,
        "log_likelihood": -3.9,
        "gap_kl_q_posterior": 0.1,
    },
}


def _model(seed=0) -> VAE:
    torch.manual_seed(seed)
    return VAE(MCFG).eval()


def _good(tmp_path, name="good.safetensors") -> str:
    return save_checkpoint(str(tmp_path / name), _model(), TrainConfig(dataset="tiny", epochs=2), **GOOD_META)


def _with_header(tmp_path, name="bad.safetensors", **fields) -> str:
    """The good checkpoint's weights under a header whose given fields are replaced by raw strings."""
    good = _good(tmp_path)
    meta = {k: json.dumps(v) for k, v in read_metadata(good).items()} | {"format": FORMAT}
    p = str(tmp_path / name)
    save_file(load_file(good), p, metadata=meta | fields)
    return p


def _assert_one_clear_error(p, needle):
    """read_metadata, load_checkpoint and the listing all give the same one-line message."""
    with pytest.raises(CheckpointError) as e:
        read_metadata(p)
    msg = str(e.value)
    assert msg.startswith(p + ": ") and needle in msg and "\n" not in msg, msg
    with pytest.raises(CheckpointError) as e2:
        load_checkpoint(p)
    assert str(e2.value) == msg
    rows = cache.list_checkpoints(os.path.dirname(p))
    assert {"path": p, "error": msg} in rows
    assert any(r["path"].endswith("good.safetensors") and "error" not in r for r in rows)
    return msg


# --- each top-level field with each wrong JSON type ------------------------------------------

WRONG = {"a list": "[]", "a string ('x')": '"x"', "null": "null", "an int (1)": "1", "a boolean (true)": "true"}


@pytest.mark.parametrize("field", ["model_config", "train_config", "dataset", "metrics"])
@pytest.mark.parametrize("kind", list(WRONG))
def test_object_fields_of_the_wrong_type(tmp_path, field, kind):
    p = _with_header(tmp_path, **{field: WRONG[kind]})
    _assert_one_clear_error(p, f"header field {field} must be a JSON object, got {kind}")


@pytest.mark.parametrize(
    "raw, kind", [("{}", "a JSON object"), ('"x"', "a string ('x')"), ("null", "null"), ("3", "an int (3)")]
)
def test_history_must_be_a_list(tmp_path, raw, kind):
    p = _with_header(tmp_path, history=raw)
    _assert_one_clear_error(p, f"header field history must be a list, got {kind}")


@pytest.mark.parametrize(
    "field, raw, needle",
    [
        ("metrics", '{"elbo": "abc"}', "metrics.elbo must be a number or null, got a string ('abc')"),
        ("metrics", '{"elbo": true}', "metrics.elbo must be a number or null, got a boolean (true)"),
        ("metrics", '{"log_likelihood": [1]}', "metrics.log_likelihood must be a number or null, got a list"),
        ("metrics", '{"kl_per_dim": "0.5"}', "metrics.kl_per_dim must be a list of numbers, got a string"),
        ("metrics", '{"kl_per_dim": [0.5, "x"]}', "metrics.kl_per_dim must be a list of numbers, got a list"),
        ("metrics", '{"active_units": -1}', "metrics.active_units must be a non-negative int, got an int (-1)"),
        ("metrics", '{"n": 2.5}', "metrics.n must be a non-negative int, got a float (2.5)"),
        ("metrics", '{"diverged": 3}', "metrics.diverged must be a string, got an int (3)"),
        ("history", "[1]", "history[0] must be a JSON object, got an int (1)"),
        (
            "history",
            '[{"epoch": 1}, {"epoch": "two"}]',
            "history[1].epoch must be a number, a list of numbers or null, got a string ('two')",
        ),
        ("history", '[{"test_kl_per_dim": [1, {}]}]', "history[0].test_kl_per_dim must be a list of numbers"),
        ("dataset", '{"name": 5}', "dataset.name must be a string, got an int (5)"),
        ("dataset", '{"fingerprint": null}', "dataset.fingerprint must be a string, got null"),
        ("dataset", '{"n_train": -3}', "dataset.n_train must be a non-negative int, got an int (-3)"),
        ("dataset", '{"n_test": "10"}', "dataset.n_test must be a non-negative int, got a string ('10')"),
        ("dataset", '{"input_shape": "abc"}', "dataset.input_shape must be a list of positive ints"),
        ("dataset", '{"input_shape": [1, 0]}', "dataset.input_shape must be a list of positive ints"),
        ("metrics", "[" * 100_000 + "]" * 100_000, "header field metrics"),  # deeper than Python recurses
        ("metrics", '{"n": ' + "9" * 5000 + "}", "header field metrics is not valid JSON"),  # int digit limit
        ("history", "[{oops", "header field history is not valid JSON"),
    ],
)
def test_nested_fields_of_the_wrong_type(tmp_path, field, raw, needle):
    _assert_one_clear_error(_with_header(tmp_path, **{field: raw}), needle)


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"latent_dim": "4"}, "latent_dim must be an int, got a string ('4')"),
        ({"latent_dim": 4.5}, "latent_dim must be an int, got a float (4.5)"),
        ({"latent_dim": True}, "latent_dim must be an int, got a boolean (true)"),
        ({"hidden": [1_000_000_000]}, "hidden widths and conv_channels must be <= 65,536"),
        ({"hidden": 400}, "hidden must be a list of ints, got an int (400)"),
        ({"hidden": [60_000, 60_000]}, f"parameters, more than the limit of {MAX_PARAMETERS:,}"),
        ({"latent_dim": 10**30}, "latent_dim must be <= 4096"),
        ({"input_shape": [3, 100_000, 100_000]}, "values per example, more than the limit"),
        ({"arch": ["mlp"]}, "arch must be a string, got a list"),
        ({"sigma": "1"}, "sigma must be a finite number, got a string ('1')"),
    ],
)
def test_model_config_types_and_sizes_checked_before_building(tmp_path, config, needle):
    """A model of 10^9-wide layers would be allocated by VAE(): the header check comes first."""
    raw = json.dumps(MCFG.to_dict() | config)
    msg = _assert_one_clear_error(_with_header(tmp_path, model_config=raw), needle)
    assert "header field model_config is invalid: " in msg


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"epochs": "3"}, "epochs must be an int, got a string ('3')"),
        ({"lr": "fast"}, "lr must be a finite number, got a string ('fast')"),
        ({"lr": float("nan")}, "lr must be a finite number, got a float (nan)"),
        ({"seed": -1}, "seed must be in [0, 2**63 - 1], got -1"),
        ({"iw_samples": 10**6}, "iw_samples must be <= 1000"),
        ({"dataset": ["mnist"]}, "dataset must be a string, got a list"),
        ({"epoch": 3}, "TrainConfig: unknown field(s) ['epoch']"),
    ],
)
def test_train_config_types_checked(tmp_path, config, needle):
    raw = json.dumps(TrainConfig(dataset="tiny").to_dict() | config)
    msg = _assert_one_clear_error(_with_header(tmp_path, train_config=raw), needle)
    assert "header field train_config is invalid: " in msg


def test_an_empty_model_config_is_the_default_architecture_and_its_weights_do_not_fit(tmp_path):
    """`model_config = "{}"`: a valid (default) config, so the listing shows it; loading names the mismatch."""
    p = _with_header(tmp_path, model_config="{}")
    assert read_metadata(p)["model_config"] == ModelConfig().to_dict()
    with pytest.raises(CheckpointError, match=r"weights do not match the stored architecture"):
        load_checkpoint(p)


def test_values_are_normalised_to_their_types(tmp_path):
    """4.0 for an int field is 4; NaN and inf anywhere become null, so the header prints as valid JSON."""
    cfg = MCFG.to_dict() | {"latent_dim": 2.0, "hidden": [5.0]}
    p = _with_header(
        tmp_path,
        model_config=json.dumps(cfg),
        metrics='{"elbo": NaN, "kl": Infinity, "kl_per_dim": [0.5, NaN], "extra": [1, -Infinity]}',
        history='[{"epoch": 1, "test_elbo": NaN, "test_kl_per_dim": [1, Infinity]}]',
        dataset='{"name": "tiny", "note": {"x": NaN}}',
    )
    meta = read_metadata(p)
    assert meta["model_config"]["latent_dim"] == 2 and type(meta["model_config"]["latent_dim"]) is int
    assert meta["metrics"] == {"elbo": None, "kl": None, "kl_per_dim": None, "extra": [1, None]}
    assert meta["history"] == [{"epoch": 1, "test_elbo": None, "test_kl_per_dim": None}]
    assert meta["dataset"] == {"name": "tiny", "note": {"x": None}}
    json.dumps(meta, allow_nan=False)  # raises on NaN
    row = next(r for r in cache.list_checkpoints(str(tmp_path)) if r["path"] == p)
    assert row["test_elbo"] is None and row["log_likelihood"] is None
    assert load_checkpoint(p).model_config == MCFG  # the weights still fit


def test_a_good_header_round_trips_unchanged(tmp_path):
    meta = read_metadata(_good(tmp_path))
    assert {k: meta[k] for k in GOOD_META} == GOOD_META


# --- weights --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_with_nan_or_inf_are_refused_on_load(tmp_path, bad):
    m = _model()
    with torch.no_grad():
        m.decoder[0].weight[1, 0] = bad
    p = save_checkpoint(str(tmp_path / "nan.safetensors"), m, TrainConfig())
    assert read_metadata(p)["model_config"] == MCFG.to_dict()  # the header alone is fine: it is listed
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert str(e.value) == f"{p}: weights contain NaN or inf values (tensor decoder.0.weight)"


def test_an_unusable_map_location_is_a_checkpoint_error(tmp_path):
    p = _good(tmp_path)
    with pytest.raises(CheckpointError, match=rf"^{p}: loaded, but cannot move the model to 'bogus'"):
        load_checkpoint(p, map_location="bogus")


# --- a full disk ----------------------------------------------------------------------------


class _DiskFull(io.FileIO):
    """A file whose write puts a few bytes on disk, then fails as a full disk does."""

    def write(self, b):
        super().write(bytes(b)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_saving_names_the_file_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    p = _good(tmp_path)
    before = open(p, "rb").read()
    monkeypatch.setattr(fsutil, "open", lambda f, mode="r": _DiskFull(f, mode.replace("b", "")), raising=False)
    with pytest.raises(StorageError) as e:
        save_checkpoint(p, _model(seed=1), TrainConfig())
    assert str(e.value) == f"{p}: could not be written (No space left on device); nothing was changed"
    assert e.value.errno == errno.ENOSPC
    assert open(p, "rb").read() == before and os.listdir(tmp_path) == ["good.safetensors"]


SAVE_UNDER_FSIZE_LIMIT = """
import resource, signal, sys, torch
sys.path.insert(0, {repo!r})
from vae_core.checkpoints import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.fsutil import StorageError
from vae_core.model import VAE
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    save_checkpoint({path!r}, VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(50,))), TrainConfig())
except StorageError as e:
    print(e)
    sys.exit(3)
"""


def test_a_real_write_failure_in_a_real_process(tmp_path):
    """The kernel refuses the write (file size limit, EFBIG): the same StorageError, nothing changed."""
    p = _good(tmp_path)
    before = open(p, "rb").read()
    r = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_FSIZE_LIMIT.format(repo=REPO, path=p)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == f"{p}: could not be written (File too large); nothing was changed"
    assert open(p, "rb").read() == before and os.listdir(tmp_path) == ["good.safetensors"]
