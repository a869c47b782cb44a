"""vae_core.model_card: the card's fields for the shipped checkpoint and a tiny one trained here,
"not recorded" for what an older header lacks, Markdown escaping, and the reproduce command parsed
back by the CLI (the same configs, so a cache hit); the Model card page under AppTest."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil

import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache_mod
from app.safe import plain
from vae_core.cache import default_checkpoint_path, train_or_load
from vae_core.checkpoints import read_metadata
from vae_core.cli import build_parser, main
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.model_card import FLAGS, NOT_RECORDED, card_sections, model_card, reproduce_command, sha256_file

TIMEOUT = 600  # a hang guard per AppTest run


def _fields(meta, sha="0" * 64, name="m.safetensors") -> dict:
    return {f: v for _t, rows in card_sections(meta, sha256=sha, file_name=name) for f, v in rows}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-epoch digits MLP trained here (its header records runtime, history and metrics)."""
    d = tmp_path_factory.mktemp("card")
    data = load_dataset("digits")
    ck, _ = train_or_load(
        ModelConfig(input_shape=data.input_shape, latent_dim=3, hidden=(32,)),
        TrainConfig(dataset="digits", epochs=2, binarize="dynamic", seed=7, beta=2.0),
        data,
        cache_dir=str(d),
        final_iw_samples=5,
        device="cpu",
    )
    return ck.path


def test_shipped_card():
    path = default_checkpoint_path()
    meta = read_metadata(path)
    f = _fields(meta, sha256_file(path), os.path.basename(path))
    with open(path, "rb") as fh:
        assert f["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert f["architecture"] == "MLP 784-400-16" and f["latent dimensions"] == "16"
    import torch  # the parameter count against the model built by torch

    from vae_core.model import VAE

    n = sum(p.numel() for p in VAE(ModelConfig.from_dict(meta["model_config"])).parameters())
    assert f["parameters"] == f"{n:,}"
    assert f["ELBO"] == "-108.73" and f["KL(q(z|x) || p(z))"] == "23.80"
    assert f["log p(x), importance-sampled"] == "-103.05 (K = 1000)" and f["active units"] == "16 of 16"
    assert f["train / test examples"] == "4000 / 1000" and f["epochs"] == "100" and f["seed"] == "0"
    assert f["device"] == NOT_RECORDED  # trained before the runtime was stored
    secs = sum(h["seconds"] for h in meta["history"])
    assert f["training time"].startswith(f"{secs:.1f} s over 100 epochs")
    assert "ELBO, beta = 1," in f["objective"] and torch is not None


def test_shipped_reproduce_command_is_a_cache_hit(tmp_path, capsys):
    path = default_checkpoint_path()
    meta = read_metadata(path)
    cmd = _fields(meta)["reproduce"]
    copy = shutil.copy(path, tmp_path)
    assert main(shlex.split(cmd)[3:] + ["--cache-dir", str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is True and out["checkpoint"] == copy and out["test_elbo"] == meta["metrics"]["elbo"]


def test_tiny_card_and_missing_fields(tiny):
    meta = read_metadata(tiny)
    f = _fields(meta)
    m = meta["metrics"]
    assert f["device"] == "cpu" and f["seed"] == "7" and "beta = 2," in f["objective"]
    assert f["ELBO"] == f"{m['elbo']:.2f}" and f["log p(x), importance-sampled"].endswith("(K = 5)")
    assert f["active units"] == f"{m['active_units']} of 3"
    old = dict(meta, metrics={}, history=[], dataset={})  # what an early checkpoint's header holds
    g = _fields(old)
    for key in (
        "ELBO",
        "reconstruction E_q log p(x|z)",
        "log p(x), importance-sampled",
        "active units",
        "training time",
        "device",
        "data fingerprint",
        "test examples evaluated",
    ):
        assert g[key] == NOT_RECORDED, key
    assert g["train / test examples"] == f"{NOT_RECORDED} / {NOT_RECORDED}"
    assert "--final-iw-samples" not in g["reproduce"]


def _parsed_configs(command: str):
    a = build_parser().parse_args(shlex.split(command)[3:])
    return {(which, field): getattr(a, dest) for _f, dest, which, field in FLAGS}


@pytest.mark.parametrize(
    "mc,tc",
    [
        (
            {
                "input_shape": [64],
                "latent_dim": 5,
                "arch": "mlp",
                "hidden": [],
                "conv_channels": [3, 5],
                "likelihood": "gaussian-learned",
                "sigma": 0.1 + 0.2,
                "sigma_mode": "per-pixel",
            },
            {
                "dataset": "-odd name with 'quotes' and `ticks`.npz",
                "epochs": 3,
                "batch_size": 7,
                "lr": 1 / 3,
                "seed": 2**62,
                "objective": "iwae",
                "beta": 0.25,
                "warmup_epochs": 1.5,
                "free_bits": 0.0,
                "mc_samples": 2,
                "iw_samples": 9,
                "mmd_weight": 3.0,
                "binarize": "none",
                "test_fraction": 0.1,
                "max_train": 11,
            },
        )
    ],
)
def test_reproduce_command_parses_back_to_the_configs(mc, tc):
    got = _parsed_configs(reproduce_command(mc, tc, 10))
    for (which, field), v in got.items():
        want = (mc if which == "model" else tc)[field]
        assert (list(v) if isinstance(v, tuple) else v) == want, field
    assert ModelConfig.from_dict(mc)  # a valid config, so the check above is about real values


def test_reproduce_command_is_a_cache_hit(tiny, tmp_path, capsys):
    """The CLI builds the same configs from the line, so it finds the checkpoint instead of training."""
    meta = read_metadata(tiny)
    cmd = reproduce_command(meta["model_config"], meta["train_config"], meta["metrics"]["iw_samples"])
    cache = tmp_path / "c"
    cache.mkdir()
    copy = shutil.copy(tiny, cache)
    assert main(shlex.split(cmd)[3:] + ["--cache-dir", str(cache), "--quiet", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cached"] is True and out["checkpoint"] == copy


def test_markdown_escapes_file_strings(tiny):
    meta = read_metadata(tiny)
    meta = dict(
        meta,
        train_config=dict(meta["train_config"], dataset="[x](javascript:alert(1)) ```"),
        dataset=dict(meta["dataset"], name="**bold** <b>x</b>"),
    )
    md = model_card(meta, sha256="ab" * 32, file_name="_a_.safetensors")
    text, _, code = md.partition("````bash")  # the command holds ``` so its fence is longer
    assert "[x](javascript" not in text and "**bold**" not in text and "<b>" not in text
    assert r"\*\*bold\*\* \<b\>x\</b\>" in text and r"\_a\_" in text
    assert code.split("\n")[1].startswith("python -m vae_core train '--dataset=[x](javascript:alert(1)) ```'")
    assert code.split("\n")[2] == "````"


def test_page_shows_the_card_and_offers_the_download(tiny, monkeypatch):
    monkeypatch.setenv(cache_mod.CACHE_DIR_ENV, os.path.dirname(tiny))
    script = (
        f"import streamlit as st\nfrom app.views import model_card\n"
        f"st.session_state.setdefault('sidebar_model_path', {tiny!r})\nmodel_card.render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    meta = read_metadata(tiny)
    assert [c.value for c in at.code] == [reproduce_command(meta["model_config"], meta["train_config"], 5)]
    values = {f: v for t in at.table for f, v in t.value["value"].items()}  # cells escaped by app.safe.plain
    assert values["sha256"] == sha256_file(tiny) and values["device"] == "cpu"
    assert values["ELBO"] == plain(f"{meta['metrics']['elbo']:.2f}") and values[plain("test examples evaluated")]
    (button,) = at.get("download_button")
    assert button.proto.label == "Download the model card (Markdown)" and button.proto.url.endswith(".md")
