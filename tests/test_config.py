"""Configs: JSON round trip, immutability, validation messages, cache-key sensitivity."""
from __future__ import annotations

import dataclasses
import json

import pytest

from vae_core.config import ConfigError, ModelConfig, TrainConfig, config_key


@pytest.mark.parametrize("cfg", [
    ModelConfig(input_shape=(3, 32, 32), latent_dim=8, arch="conv", hidden=(128,), conv_channels=(16, 32),
                likelihood="gaussian-learned", sigma_mode="per-pixel"),
    ModelConfig(input_shape=(10,), latent_dim=2, hidden=(), likelihood="gaussian", sigma=0.3),
    TrainConfig(dataset="x.npz", epochs=3, objective="iwae", iw_samples=7, beta=0.5, warmup_epochs=1.5,
                free_bits=0.1, binarize="dynamic", max_train=10),
])
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


@pytest.mark.parametrize("kw, msg", [
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
])
def test_bad_model_config_names_the_field(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        ModelConfig(**kw)


@pytest.mark.parametrize("kw, msg", [
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
])
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
    others = {config_key(m.replace(latent_dim=21), t, "fp0"),
              config_key(m.replace(hidden=(401,)), t, "fp0"),
              config_key(m, t.replace(seed=1), "fp0"),
              config_key(m, t.replace(beta=1.01), "fp0"),
              config_key(m, t, "fp1")}
    assert k not in others and len(others) == 5
