"""Configs: JSON round trip, immutability, validation messages, cache-key sensitivity."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from vae_core.config import ConfigError, ModelConfig, TrainConfig, config_key, parse_hidden


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(
            input_shape=(3, 32, 32),
            latent_dim=8,
            arch="conv",
            hidden=(128,),
            conv_channels=(16, 32),
            likelihood="gaussian-learned",
            sigma_mode="per-pixel",
        ),
        ModelConfig(input_shape=(10,), latent_dim=2, hidden=(), likelihood="gaussian", sigma=0.3),
        TrainConfig(
            dataset="x.npz",
            epochs=3,
            objective="iwae",
            iw_samples=7,
            beta=0.5,
            warmup_epochs=1.5,
            free_bits=0.1,
            binarize="dynamic",
            max_train=10,
        ),
    ],
)
def test_json_round_trip_restores_equal_config(cfg):
    d = json.loads(json.dumps(cfg.to_dict()))  # what a checkpoint stores: lists, not tuples
    back = type(cfg).from_dict(d)
    assert back == cfg and hash(back) == hash(cfg)
    assert all(not isinstance(v, tuple) for v in cfg.to_dict().values())


def test_configs_are_frozen_and_replace_revalidates():
    m = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.latent_dim = 3
    assert m.replace(latent_dim=3).latent_dim == 3 and m.latent_dim == 20
    with pytest.raises(ConfigError, match="latent_dim must be >= 1, got 0"):
        m.replace(latent_dim=0)


def test_lists_become_tuples_and_input_dim_is_the_product():
    m = ModelConfig(input_shape=[1, 28, 28], hidden=[512, 256])
    assert m.input_shape == (1, 28, 28) and m.hidden == (512, 256)
    assert m.input_dim == 784 and ModelConfig(input_shape=(17,)).input_dim == 17


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(input_shape=(1, 28)), "input_shape must be"),
        (dict(input_shape=(0,)), "input_shape must be"),
        (dict(latent_dim=0), "latent_dim must be >= 1"),
        (dict(arch="rnn"), "arch must be one of"),
        (dict(hidden=(10, -1)), "hidden sizes must be positive"),
        (dict(likelihood="poisson"), "likelihood must be one of"),
        (dict(sigma=0.0), "sigma must be > 0"),
        (dict(sigma_mode="per-row"), "sigma_mode must be one of"),
        (dict(arch="conv", input_shape=(1, 20, 20)), "conv arch takes 28x28 or 32x32"),
        (dict(arch="conv", input_shape=(784,)), "conv arch takes 28x28 or 32x32"),
        (dict(arch="conv", conv_channels=(8,)), "conv_channels must have two entries"),
    ],
)
def test_bad_model_config_names_the_field(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        ModelConfig(**kw)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(epochs=0), "epochs must be >= 1"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(objective="vae"), "objective must be one of"),
        (dict(beta=-1.0), "beta must be >= 0, got -1.0"),
        (dict(warmup_epochs=-1), "warmup_epochs must be >= 0"),
        (dict(free_bits=-0.5), "free_bits must be >= 0"),
        (dict(mc_samples=0), "mc_samples must be >= 1"),
        (dict(iw_samples=0), "iw_samples must be >= 1"),
        (dict(mmd_weight=-1), "mmd_weight must be >= 0"),
        (dict(binarize="otsu"), "binarize must be one of"),
        (dict(test_fraction=1.0), "test_fraction must be in"),
        (dict(max_train=-1), "max_train must be >= 0"),
    ],
)
def test_bad_train_config_names_the_field(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        TrainConfig(**kw)


def test_from_dict_rejects_unknown_fields_and_fills_defaults():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['lattent_dim'\]"):
        ModelConfig.from_dict({"lattent_dim": 3})
    assert TrainConfig.from_dict({"epochs": 2}) == TrainConfig(epochs=2)


def test_config_key_changes_with_every_input_and_only_with_them():
    m, t = ModelConfig(), TrainConfig()
    k = config_key(m, t, "fp0")
    assert k == config_key(ModelConfig(), TrainConfig(), "fp0")  # separately built, same key
    assert len(k) == 16 and int(k, 16) >= 0
    others = {
        config_key(m.replace(latent_dim=21), t, "fp0"),
        config_key(m.replace(hidden=(401,)), t, "fp0"),
        config_key(m, t.replace(seed=1), "fp0"),
        config_key(m, t.replace(beta=1.01), "fp0"),
        config_key(m, t, "fp1"),
    }
    assert k not in others and len(others) == 5


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(latent_dim="4"), "latent_dim must be an int, got a string ('4')"),
        (dict(latent_dim=4.5), "latent_dim must be an int, got a float (4.5)"),
        (dict(latent_dim=True), "latent_dim must be an int, got a boolean (true)"),
        (dict(hidden=[400, "x"]), "hidden[1] must be an int, got a string ('x')"),
        (dict(input_shape="abc"), "input_shape must be a list of ints, got a string ('abc')"),
        (dict(arch=None), "arch must be a string, got null"),
        (dict(sigma=float("inf")), "sigma must be a finite number, got a float (inf)"),
        (dict(sigma="1"), "sigma must be a finite number, got a string ('1')"),
    ],
)
def test_model_config_fields_have_strict_types(kw, msg):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**kw)
    assert str(e.value) == msg


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(epochs="3"), "epochs must be an int, got a string ('3')"),
        (dict(batch_size=2.5), "batch_size must be an int, got a float (2.5)"),
        (dict(lr=float("nan")), "lr must be a finite number, got a float (nan)"),
        (dict(beta=True), "beta must be a finite number, got a boolean (true)"),
        (dict(dataset=3), "dataset must be a string, got an int (3)"),
        (dict(seed=-1), "seed must be in [0, 2**63 - 1], got -1"),
        (dict(iw_samples=1001), "iw_samples must be <= 1000 (MAX_TRAIN_SAMPLES), got 1001"),
    ],
)
def test_train_config_fields_have_strict_types(kw, msg):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kw)
    assert str(e.value) == msg


def test_integral_floats_become_ints_and_ints_become_floats():
    """4.0 (a JSON number written by another tool) is the int 4; the config and its key are unchanged."""
    m = ModelConfig(latent_dim=4.0, hidden=[400.0], input_shape=(1.0, 28, 28))
    assert m == ModelConfig(latent_dim=4) and type(m.latent_dim) is int and type(m.hidden[0]) is int
    t = TrainConfig(beta=1, lr=1)
    assert type(t.beta) is float and config_key(m, t, "fp") == config_key(
        ModelConfig(latent_dim=4), TrainConfig(beta=1.0, lr=1.0), "fp"
    )
    with pytest.raises(ConfigError, match=r"ModelConfig must be a JSON object, got a list"):
        ModelConfig.from_dict([])


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        ModelConfig(
            input_shape=(6,), latent_dim=2, hidden=(5, 4), likelihood="gaussian-learned", sigma_mode="per-pixel"
        ),
        ModelConfig(
            input_shape=(3, 32, 32),
            latent_dim=8,
            arch="conv",
            hidden=(128,),
            conv_channels=(16, 32),
            likelihood="gaussian-learned",
        ),
        ModelConfig(input_shape=(1, 28, 28), latent_dim=2, arch="conv", hidden=(), conv_channels=(2, 3)),
    ],
)
def test_n_parameters_counts_what_the_model_allocates(cfg):
    """The size check runs before the model is built: its count must be the built model's."""
    from vae_core.model import VAE

    assert cfg.n_parameters() == sum(p.numel() for p in VAE(cfg).parameters())


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(latent_dim=4097), "latent_dim must be <= 4096 (MAX_LATENT_DIM)"),
        (dict(hidden=(65_537,)), "hidden widths and conv_channels must be <= 65,536 (MAX_WIDTH)"),
        (dict(hidden=(8,) * 17), "hidden has 17 layers, more than the limit of 16 (MAX_LAYERS)"),
        (dict(input_shape=(3, 4096, 4096)), "values per example, more than the limit of 16,777,216 (MAX_INPUT_DIM)"),
        (dict(hidden=(20_000, 20_000)), "parameters, more than the limit of 100,000,000 (MAX_PARAMETERS)"),
        (dict(arch="conv", conv_channels=(0, 8)), "conv_channels must be positive"),
    ],
)
def test_sizes_are_bounded_before_anything_is_built(kw, msg):
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ModelConfig(**kw)


@pytest.mark.parametrize(
    "text, want",
    [
        ("400", (400,)),
        ("512,256", (512, 256)),
        (" 512 , 256 ", (512, 256)),
        ("400,", (400,)),
        ("", ()),
        ("  ", ()),
        ("none", ()),
        ("Linear", ()),
    ],
)
def test_parse_hidden_reads_what_a_person_types(text, want):
    assert parse_hidden(text) == want


@pytest.mark.parametrize("text", ["4x,3", "400,,256", "0", "-5", "1.5", ",", "4e2", "٤"])
def test_parse_hidden_refuses_anything_else_naming_the_field(text):
    with pytest.raises(
        ConfigError,
        match=r"^conv channels: comma-separated positive integers like 400 or "
        r"512,256 \('' or 'linear' for none\), got ",
    ):
        parse_hidden(text, "conv channels")
