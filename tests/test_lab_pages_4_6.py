"""Lab pages 4-6 under AppTest.

1. On the shipped default model: every lab run opens from the committed checkpoints/lab/ (no Train
   button), no exception, and the numbers the pages state agree with their own tables.
2. On a tiny digits model in a temporary cache: nothing is cached, the Train button trains the runs
   through the cache (with a progress bar) and the page then renders.
"""

import json
import os
import re

import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache
from app.palette import label_colour
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


def _figure(at: AppTest, key: str) -> dict:
    """The plotly figure (data, layout) a chart element sends to the browser."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return json.loads(chart.proto.spec)


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


def test_beta_collapse_charts_name_dims_and_colour_labels_like_the_explorer(shipped):
    """Issue 12.7: dims are z1..z16 as on every other page; the threshold is a legend entry, not a label
    drawn over the bars; the maps use the explorer's label colours."""
    at = _run("app.lab.beta_collapse")
    _ok(at)
    for key in ("lab4_kl_dims", "lab4_au_dims", "lab4_collapse_dims"):
        bars = [t for t in _figure(at, key)["data"] if t["type"] == "bar"]
        assert bars and all(t["x"] == [f"z{d}" for d in range(1, 17)] for t in bars), key
    au = _figure(at, "lab4_au_dims")
    assert not au["layout"].get("annotations")
    assert "active-unit threshold 0.01" in [t.get("name") for t in au["data"]]
    assert [s["y0"] for s in au["layout"]["shapes"]] == [0.01]
    maps = [t for t in _figure(at, "lab4_maps")["data"] if t.get("legendgroup", "").isdigit()]
    assert len({t["legendgroup"] for t in maps}) == 10
    assert all(t["marker"]["color"] == label_colour(int(t["legendgroup"])) for t in maps)


def test_aggregate_posterior_page_on_shipped_models(shipped):
    at = _run("app.lab.aggregate_posterior")
    _ok(at)
    assert not at.button
    table = at.table[0].value  # a static table: long quantity names wrap instead of being cut off
    assert list(table.columns) == ["VAE (KL, β=1)", "MMD-VAE (λ=100)"]
    assert "Σ_d KL(Q_d‖N(0,1)) over the 1-D marginals" in table.index
    mmd = [float(v) for v in table.loc["MMD²(Q, p)"]]
    assert mmd[1] < mmd[0]  # the MMD-VAE matches the prior better in MMD, the quantity it trains on
    assert len(at.get("plotly_chart")) == 3  # histograms + one hole map per model
    hist = _figure(at, "lab5_hist")
    assert [a["text"] for a in hist["layout"]["annotations"]] == [f"z{d}" for d in range(1, 17)]


def test_ae_vs_vae_page_on_shipped_models(shipped):
    at = _run("app.lab.ae_vs_vae")
    _ok(at)
    assert not at.button
    recon = at.dataframe[0].value
    assert list(recon.index) == ["VAE (KL, β=1)", "Autoencoder"]
    samples = at.dataframe[1].value
    assert len(samples) == 4 and "real test images (reference)" in samples.index
    for key in ("lab6_map_vae", "lab6_map_ae"):  # issue 12.7: a colour legend, the explorer's colours
        codes = [t for t in _figure(at, key)["data"] if t["name"].startswith("μ(x), label ")]
        assert [t["name"] for t in codes] == [f"μ(x), label {d}" for d in range(10)]
        assert all(t["marker"]["color"] == label_colour(d) and t.get("showlegend", True) for d, t in enumerate(codes))
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
    files = sorted(os.listdir(os.path.join(tiny_cache, "lab")))
    assert len([f for f in files if f.endswith(".safetensors")]) == 2  # the VAE and the AE, 30 epochs each
    assert len([f for f in files if ".lab-lab6-" in f]) == 1  # and the page's report, beside the VAE
    assert not at.button and len(at.dataframe) == 2
