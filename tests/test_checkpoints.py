"""Checkpoint I/O: exact round trip, atomic writes, no code on load, a clear error per bad file; the cache."""

from __future__ import annotations

import errno
import io
import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

import vae_core.cache as cache
from vae_core import fsutil
from vae_core.checkpoints import FORMAT, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.fsutil import StorageError
from vae_core.model import VAE

HISTORY = [{"epoch": 1, "test_elbo": -50.5, "test_kl_per_dim": [0.5, 1.25]}, {"epoch": 2, "test_elbo": -40.0}]
DATASET = {"name": "tiny", "fingerprint": "abc123", "n_train": 96}
METRICS = {"elbo": -40.0, "log_likelihood": -39.0, "kl_per_dim": [1.0, 2.0]}


def _model(cfg: ModelConfig, seed=0) -> VAE:
    torch.manual_seed(seed)
    m = VAE(cfg)
    if cfg.likelihood == "gaussian-learned":  # make log sigma non-trivial so a lost parameter shows
        with torch.no_grad():
            m.log_sigma.normal_()
    return m.eval()


def _saved(tmp_path, cfg=None, name="m.safetensors"):
    cfg = cfg or ModelConfig(
        input_shape=(6,), latent_dim=2, hidden=(5,), likelihood="gaussian-learned", sigma_mode="per-pixel"
    )
    m = _model(cfg)
    path = save_checkpoint(
        str(tmp_path / name),
        m,
        TrainConfig(dataset="tiny", epochs=2),
        history=HISTORY,
        dataset=DATASET,
        metrics=METRICS,
    )
    return path, m


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,), likelihood="gaussian-learned", sigma_mode="per-pixel"),
        ModelConfig(input_shape=(6,), latent_dim=3, hidden=(), likelihood="gaussian", sigma=0.3),
        ModelConfig(
            input_shape=(1, 28, 28),
            latent_dim=2,
            arch="conv",
            hidden=(),
            conv_channels=(2, 3),
            likelihood="continuous-bernoulli",
        ),
    ],
)
def test_round_trip_is_exact(tmp_path, cfg):
    tcfg = TrainConfig(dataset="tiny", epochs=2, objective="iwae", iw_samples=3, binarize="dynamic")
    m = _model(cfg)
    path = save_checkpoint(
        str(tmp_path / "sub" / "m.safetensors"), m, tcfg, history=HISTORY, dataset=DATASET, metrics=METRICS
    )  # creates the folder too
    ck = load_checkpoint(path)
    assert (ck.model_config, ck.train_config) == (cfg, tcfg)
    assert (ck.history, ck.dataset, ck.metrics, ck.path) == (HISTORY, DATASET, METRICS, path)
    assert not ck.model.training
    a, b = m.state_dict(), ck.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(4, *cfg.input_shape, generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 4, cfg.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # mu, logvar, E[x|z], log p(x|z) (the last one uses sigma)
        outs = lambda mm: [*mm.encode(x), mm.decode_mean(z), mm.log_px_given_z(mm.decode(z), x)]
        assert all(torch.equal(u, v) for u, v in zip(outs(m), outs(ck.model)))
    assert read_metadata(path)["history"] == HISTORY  # header only, same content


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path, _ = _saved(tmp_path)
    assert os.listdir(tmp_path) == ["m.safetensors"]
    assert os.stat(path).st_mode & 0o777 == 0o644  # readable by other processes sharing the cache


def test_failing_write_does_not_clobber_the_existing_file(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path)
    before = open(path, "rb").read()

    class HalfThenFull(io.FileIO):
        def write(self, b):
            super().write(bytes(b)[:11])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil, "open", lambda f, mode="r": HalfThenFull(f, mode.replace("b", "")), raising=False)
    other = _model(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,)), seed=1)
    with pytest.raises(StorageError, match="m.safetensors: could not be written .No space left on device"):
        save_checkpoint(path, other, TrainConfig())
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


class _Booby:
    """Unpickling this would create a file: proof that loading runs no code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _torch_pickle(path, tmp_path, legacy=False):
    torch.save(
        {
            "state": _model(ModelConfig(input_shape=(6,), latent_dim=2)).state_dict(),
            "evil": _Booby(str(tmp_path / "PWNED")),
        },
        path,
        _use_new_zipfile_serialization=not legacy,
    )


def _bad(kind, tmp_path):
    """Write one kind of bad checkpoint; return its path."""
    good, _ = _saved(tmp_path, name="good.safetensors")
    raw = open(good, "rb").read()
    p = str(tmp_path / f"{kind}.safetensors")
    meta = read_metadata(good)
    flat = {k: json.dumps(v) for k, v in meta.items()} | {"format": FORMAT}
    if kind == "missing":
        return str(tmp_path / "nope.safetensors")
    if kind == "truncated":
        open(p, "wb").write(raw[: len(raw) - 7])
    elif kind == "truncated-header":
        open(p, "wb").write(raw[:40])
    elif kind == "empty":
        open(p, "wb").close()
    elif kind == "random":
        open(p, "wb").write(os.urandom(4096))
    elif kind == "foreign-no-tag":
        save_file({"weight": torch.ones(3)}, p)
    elif kind == "foreign-other-tag":
        save_file({"weight": torch.ones(3)}, p, metadata={"format": "pt"})
    elif kind in ("torch-pickle", "torch-pickle-legacy"):
        p = str(tmp_path / "model.pt")
        _torch_pickle(p, tmp_path, legacy=kind.endswith("legacy"))
    elif kind == "bad-config-value":
        save_file(load_file(good), p, metadata=flat | {"model_config": json.dumps({"latent_dim": -1})})
    elif kind == "bad-config-field":
        save_file(load_file(good), p, metadata=flat | {"train_config": json.dumps({"epoch": 3})})
    elif kind == "bad-config-type":
        save_file(load_file(good), p, metadata=flat | {"model_config": json.dumps({"input_shape": "abc"})})
    elif kind == "metadata-not-json":
        save_file(load_file(good), p, metadata=flat | {"history": "[{oops"})
    elif kind == "metadata-missing-key":
        save_file(load_file(good), p, metadata={k: v for k, v in flat.items() if k != "train_config"})
    elif kind == "arch-mismatch":  # weights of a latent-3 model under a latent-2 config
        other = _model(
            ModelConfig(
                input_shape=(6,), latent_dim=3, hidden=(5,), likelihood="gaussian-learned", sigma_mode="per-pixel"
            )
        )
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, p, metadata=flat)
    elif kind == "missing-weight":
        st = load_file(good)
        st.pop("log_sigma")
        save_file(st, p, metadata=flat)
    return p


@pytest.mark.parametrize(
    "kind, msg",
    [
        ("missing", "no such checkpoint file"),
        ("truncated", "corrupt or truncated"),
        ("truncated-header", "corrupt or truncated"),
        ("empty", "corrupt or truncated"),
        ("random", "corrupt or truncated"),
        ("foreign-no-tag", r"not a vae_core checkpoint \(format tag None"),
        ("foreign-other-tag", r"not a vae_core checkpoint \(format tag 'pt'"),
        ("torch-pickle", "PyTorch pickle"),
        ("torch-pickle-legacy", "PyTorch pickle"),
        ("bad-config-value", r"header field model_config is invalid: latent_dim must be >= 1"),
        ("bad-config-field", r"header field train_config is invalid: TrainConfig: unknown field\(s\) \['epoch'\]"),
        ("bad-config-type", r"header field model_config is invalid: input_shape must be a list of ints, got a string"),
        ("metadata-not-json", "header field history is not valid JSON"),
        ("metadata-missing-key", "header field train_config is missing"),
        ("arch-mismatch", "weights do not match the stored architecture.*size mismatch"),
        ("missing-weight", "weights do not match the stored architecture.*log_sigma"),
    ],
)
def test_each_bad_file_raises_a_checkpoint_error_naming_file_and_problem(tmp_path, kind, msg):
    p = _bad(kind, tmp_path)
    with pytest.raises(CheckpointError, match=msg) as e:
        load_checkpoint(p)
    assert str(e.value).startswith(p + ":")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "PWNED").exists()  # the pickle's payload never ran


def test_stored_tensors_are_device_agnostic_and_load_on_cpu(tmp_path):
    path, m = _saved(tmp_path)
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]  # safetensors: u64 header length, JSON header, raw bytes
    header = json.loads(raw[8 : 8 + n])
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    assert entries.keys() == m.state_dict().keys()
    # dtype, shape and byte offsets only: nothing records the device the tensors came from
    assert all(set(v) == {"dtype", "shape", "data_offsets"} for v in entries.values())
    for loc in ("cpu", torch.device("cpu")):
        ck = load_checkpoint(path, map_location=loc)
        assert all(t.device.type == "cpu" for t in ck.model.state_dict().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_saved_model_loads_on_cpu(tmp_path):
    cfg = ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,), likelihood="gaussian-learned")
    m = _model(cfg).cuda()
    path = save_checkpoint(str(tmp_path / "gpu.safetensors"), m, TrainConfig())
    ck = load_checkpoint(path, map_location="cpu")
    a, b = m.state_dict(), ck.model.state_dict()
    assert all(b[k].device.type == "cpu" and torch.equal(a[k].cpu(), b[k]) for k in a)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_map_location_without_a_gpu_is_a_clear_error(tmp_path):
    path, _ = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="cannot move the model to 'cuda'"):
        load_checkpoint(path, map_location="cuda")


# --- the cache ------------------------------------------------------------------------------


def test_train_or_load_trains_once_then_hits_the_cache(tmp_path, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    seen = []
    ck, cached = cache.train_or_load(
        mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu", final_iw_samples=10, on_trained=seen.append
    )
    assert not cached and seen == [ck] and len(ck.history) == 1
    assert ck.path == cache.cache_path(mcfg, tcfg, tiny_data, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(ck.path)]  # no lock or temp file left

    def no_training(*a, **k):
        raise AssertionError("fit() called on a cache hit")

    ck2, cached2 = cache.train_or_load(
        mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu", on_trained=seen.append, fit=no_training
    )
    assert cached2 and len(seen) == 1
    assert (
        ck2.metrics == ck.metrics and ck2.history == ck.history and ck2.dataset["fingerprint"] == tiny_data.fingerprint
    )
    a, b = ck.model.state_dict(), ck2.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # any change of config or data is a different key, hence a miss (which would train)
    with pytest.raises(AssertionError, match="fit\\(\\) called"):
        cache.train_or_load(mcfg, tcfg.replace(seed=1), tiny_data, cache_dir=str(tmp_path), fit=no_training)


def test_list_checkpoints_reports_good_and_unreadable_files(tmp_path, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    ck, _ = cache.train_or_load(mcfg, tcfg, tiny_data, cache_dir=str(tmp_path), device="cpu", final_iw_samples=5)
    (tmp_path / "zz-broken.safetensors").write_bytes(b"not a checkpoint")
    rows = cache.list_checkpoints(str(tmp_path))
    assert [os.path.basename(r["path"]) for r in rows] == [os.path.basename(ck.path), "zz-broken.safetensors"]
    assert rows[0]["test_elbo"] == ck.metrics["elbo"] and rows[0]["log_likelihood"] == ck.metrics["log_likelihood"]
    assert rows[0]["model_config"] == mcfg.to_dict() and "corrupt or truncated" in rows[1]["error"]


def test_default_cache_dir_is_read_from_the_environment_at_each_call(monkeypatch, tmp_path, tiny_data, tiny_cfgs):
    mcfg, tcfg = tiny_cfgs
    monkeypatch.delenv(cache.CACHE_DIR_ENV, raising=False)
    shipped = os.path.join(cache.REPO_ROOT, "checkpoints")
    assert cache.default_cache_dir() == shipped
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path))  # after import: still followed
    assert os.path.dirname(cache.cache_path(mcfg, tcfg, tiny_data)) == str(tmp_path)
    ck, _ = cache.train_or_load(mcfg, tcfg, tiny_data, device="cpu", final_iw_samples=0)
    assert os.path.dirname(ck.path) == str(tmp_path) and [r["path"] for r in cache.list_checkpoints()] == [ck.path]
    monkeypatch.setenv(cache.CACHE_DIR_ENV, "")  # set but empty: the default
    assert cache.default_cache_dir() == shipped


def test_shipped_default_checkpoint_is_still_a_cache_hit():
    """Changing a config default or the data fingerprint silently orphans the shipped model."""
    from vae_core.data import load_dataset

    folder = os.path.join(cache.REPO_ROOT, "checkpoints")
    data = load_dataset(cache.DEFAULT_TRAIN.dataset, test_fraction=cache.DEFAULT_TRAIN.test_fraction)
    path = cache.cache_path(cache.DEFAULT_MODEL, cache.DEFAULT_TRAIN, data, folder)  # key of the data on disk
    assert os.path.isfile(path), f"{path} missing: DEFAULT_MODEL/DEFAULT_TRAIN or mnist-5k changed its key"
    assert cache.default_checkpoint_path(folder) == path  # found from the headers alone
    meta = read_metadata(path)
    assert meta["model_config"] == cache.DEFAULT_MODEL.to_dict()
    assert meta["train_config"] == cache.DEFAULT_TRAIN.to_dict()


def test_default_checkpoint_path_without_the_default_is_the_key_of_the_data(tmp_path):
    """Not in the cache (or a file under its name whose stored fingerprint gives another key):
    the path training the default would write."""
    from vae_core.data import load_dataset

    data = load_dataset(cache.DEFAULT_TRAIN.dataset, test_fraction=cache.DEFAULT_TRAIN.test_fraction)
    want = cache.cache_path(cache.DEFAULT_MODEL, cache.DEFAULT_TRAIN, data, str(tmp_path))
    assert cache.default_checkpoint_path(str(tmp_path)) == want
    decoy = tmp_path / cache.checkpoint_name(cache.DEFAULT_MODEL, cache.DEFAULT_TRAIN, "0" * 16)
    save_checkpoint(
        str(decoy),
        _model(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(5,))),
        cache.DEFAULT_TRAIN,
        dataset={"fingerprint": data.fingerprint},
    )
    assert cache.default_checkpoint_path(str(tmp_path)) == want
