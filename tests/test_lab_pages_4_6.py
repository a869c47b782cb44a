"""Lab pages 4-6 under AppTest.

1. On the shipped default model: every lab run opens from the committed checkpoints/lab/ (no Train
   button), no exception, and the numbers the pages state agree with their own tables.
2. On a tiny digits model in a temporary cache: nothing is cached, the Train button trains the runs
   through the cache (with a progress bar) and the page then renders.
"""
import os
import re

import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.lab.sweeps import default_runs, is_cached


def _page(module: str):
    import importlib
    importlib.import_module(module).render()


def _run(module: str, timeout: int = 600) -> AppTest:
    return AppTest.from_function(_page, args=(module,), default_timeout=timeout).run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def shipped():
    if not os.path.exists(cache.default_checkpoint_path()):
        pytest.fail("the shipped default checkpoint is missing from checkpoints/")
    data = load_dataset("mnist-5k")
    missing = [r.name for r in default_runs() if not is_cached(r, data)]
    assert not missing, f"committed lab checkpoints missing for {missing}: run python -m vae_core.lab.sweeps"


def test_beta_collapse_page_on_shipped_sweeps(shipped):
    at = _run("app.lab.beta_collapse")
    _ok(at)
    assert not at.button, "every default run should open from the committed checkpoints"
    sweep = at.dataframe[0].value
    assert list(sweep.index) == ["β=0.1", "β=1", "β=4", "β=10"]
    kl = list(sweep["KL"])
    assert kl == sorted(kl, reverse=True) and kl[0] > 5 * kl[-1]
    au = list(sweep.iloc[:, -1])
    assert au == sorted(au, reverse=True)
    line = next(m.value for m in at.markdown if m.value.startswith("Active units per β"))
    assert [int(v) for v in re.findall(r": (\d+)\*\*", line)] == au
    collapse = at.dataframe[1].value
    assert collapse["KL"].iloc[2] > 2 * collapse["KL"].iloc[0]  # free bits keep information in the code
    assert at.metric[0].value == "784"  # effective beta of a mean-BCE loss for 28x28 inputs
    assert float(at.metric[1].value) < 0.05  # ...and that model's measured KL
    at.radio(key="lab4_kl_red").set_value("mean").run()
    assert at.metric[0].value == "49"  # 784 / 16 latent dims


def test_aggregate_posterior_page_on_shipped_models(shipped):
    at = _run("app.lab.aggregate_posterior")
    _ok(at)
    assert not at.button
    table = at.dataframe[0].value
    mmd = [float(v) for v in table["MMD²(Q, p)"]]
    assert mmd[1] < mmd[0]  # the MMD-VAE matches the prior better in MMD, the quantity it trains on
    assert len(at.get("plotly_chart")) == 3  # histograms + one hole map per model


def test_ae_vs_vae_page_on_shipped_models(shipped):
    at = _run("app.lab.ae_vs_vae")
    _ok(at)
    assert not at.button
    recon = at.dataframe[0].value
    assert list(recon.index) == ["VAE (KL, β=1)", "Autoencoder"]
    samples = at.dataframe[1].value
    assert len(samples) == 4 and "real test images (reference)" in samples.index
    at.number_input(key="lab6_to").set_value(7).run()
    _ok(at)


@pytest.fixture()
def tiny_cache(tmp_path, monkeypatch):
    """A one-epoch 64-16-2 Bernoulli MLP on sklearn digits as the only model in a temporary cache."""
    d = str(tmp_path)
    mc = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(16,))
    tc = TrainConfig(dataset="digits", epochs=1, batch_size=64, seed=0, binarize="dynamic")
    cache.train_or_load(mc, tc, load_dataset("digits"), cache_dir=d, final_iw_samples=5)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", d)
    return d


@pytest.mark.slow
def test_ae_vs_vae_page_trains_missing_runs_with_progress(tiny_cache):
    at = _run("app.lab.ae_vs_vae")
    _ok(at)
    assert [b.label for b in at.button] == ["Train 2 model(s) now"]
    assert not at.dataframe
    at.button[0].click().run()
    _ok(at)
    assert len(os.listdir(os.path.join(tiny_cache, "lab"))) == 2  # the VAE and the AE, 30 epochs each
    assert not at.button and len(at.dataframe) == 2
