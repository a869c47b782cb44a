"""Lab pages 4-6 under AppTest.

1. On the shipped default model: every lab run opens from the committed checkpoints/lab/ (no Train
   button), no exception, and the numbers the pages state agree with their own tables.
2. On a tiny digits model in a temporary cache: nothing is cached, the Train button trains the runs
   through the cache (with a progress bar) and the page then renders.
"""

import json
import os
import re

import numpy as np
import pandas as pd
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


# the page's Vega-Lite charts in page order (their element ids do not carry the key)
CHARTS = {
    "app.lab.beta_collapse": ["lab4_kl_dims", "lab4_au_dims", "lab4_maps", "lab4_collapse_dims", "lab4_collapse_hist"],
    "app.lab.aggregate_posterior": ["lab5_hist", "lab5_holes_0", "lab5_holes_1"],
    "app.lab.ae_vs_vae": ["lab6_map_vae", "lab6_map_ae"],
}


def _chart(at: AppTest, key: str) -> tuple[dict, pd.DataFrame]:
    """(Vega-Lite spec, its data tables concatenated) a chart element sends to the browser."""
    import pyarrow as pa

    (page,) = [p for p, keys in CHARTS.items() if key in keys]
    charts = at.get("vega_lite_chart")
    assert len(charts) == len(CHARTS[page])
    chart = charts[CHARTS[page].index(key)]
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
    return json.loads(chart.proto.spec), pd.concat(frames, ignore_index=True)


def _colours(spec) -> dict:
    """{series: colour} from every colour scale with an explicit domain and range in the spec."""
    out = {}
    if isinstance(spec, dict):
        scale = spec.get("color", {}).get("scale", {}) if isinstance(spec.get("color"), dict) else {}
        if "domain" in scale and "range" in scale:
            out.update(zip(scale["domain"], scale["range"]))
        for v in spec.values():
            out.update(_colours(v))
    elif isinstance(spec, list):
        for v in spec:
            out.update(_colours(v))
    return out


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
    sweep = at.table[0].value
    assert list(sweep.index) == ["β=0.1", "β=1", "β=4", "β=10"]
    kl = list(sweep["KL"])
    assert kl == sorted(kl, reverse=True) and kl[0] > 5 * kl[-1]
    au = list(sweep.iloc[:, -1])
    assert au == sorted(au, reverse=True)
    line = next(m.value for m in at.markdown if m.value.startswith("Active units per β"))
    assert [int(v) for v in re.findall(r": (\d+)\*\*", line)] == au
    collapse = at.table[1].value
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
    sweep = at.table[0].value
    for key in ("lab4_kl_dims", "lab4_au_dims", "lab4_collapse_dims"):
        spec, bars = _chart(at, key)
        bars = bars[bars.category.notna()]
        for _, g in bars.groupby("group"):
            assert list(g.category) == [f"z{d}" for d in range(1, 17)], key
    spec, au = _chart(at, "lab4_au_dims")
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "rule"]  # no text over the bars
    assert spec["title"]["subtitle"] == ["dashed: active-unit threshold 0.01"]
    assert list(au.loc[au.name.notna(), "value"]) == [0.01]
    # the KL bars sum to the sweep table's KL per model
    _, kl = _chart(at, "lab4_kl_dims")
    totals = kl.groupby("group")["value"].sum()
    assert [round(totals[b], 1) for b in sweep.index] == pytest.approx(list(sweep["KL"]), abs=0.2)
    spec, maps = _chart(at, "lab4_maps")
    assert set(maps.series) == {f"label {d}" for d in range(10)}
    assert _colours(spec) == {f"label {d}": label_colour(d) for d in range(10)}


def test_aggregate_posterior_page_on_shipped_models(shipped):
    at = _run("app.lab.aggregate_posterior")
    _ok(at)
    assert not at.button
    table = at.table[0].value  # a static table: long quantity names wrap instead of being cut off
    assert list(table.columns) == ["VAE (KL, β=1)", "MMD-VAE (λ=100)"]
    assert "Σ_d KL(Q_d‖N(0,1)) over the 1-D marginals" in table.index
    mmd = [float(v) for v in table.loc["MMD²(Q, p)"]]
    assert mmd[1] < mmd[0]  # the MMD-VAE matches the prior better in MMD, the quantity it trains on
    assert len(at.get("vega_lite_chart")) == 3  # histograms + one hole map per model
    spec, hist = _chart(at, "lab5_hist")
    bars, curve = hist[hist.series != "N(0, 1)"], hist[hist.series == "N(0, 1)"]
    assert spec["facet"]["sort"] == [f"z{d}" for d in range(1, 17)] and set(bars.dim) == set(spec["facet"]["sort"])
    for _, h in bars.groupby(["dim", "series"]):
        assert ((h.x2 - h.x) * h.y).sum() == pytest.approx(1.0)  # a density over the clipped range
    assert np.allclose(curve.y, np.exp(-0.5 * curve.x**2) / np.sqrt(2 * np.pi))  # one N(0, 1) curve, every cell


def test_ae_vs_vae_page_on_shipped_models(shipped):
    at = _run("app.lab.ae_vs_vae")
    _ok(at)
    assert not at.button
    recon = at.table[0].value
    assert list(recon.index) == ["VAE (KL, β=1)", "Autoencoder"]
    samples = at.table[1].value
    assert len(samples) == 4 and "real test images (reference)" in samples.index
    for key in ("lab6_map_vae", "lab6_map_ae"):  # issue 12.7: a colour legend, the explorer's colours
        spec, points = _chart(at, key)
        assert _colours(spec) == {f"μ(x), label {d}": label_colour(d) for d in range(10)}
        assert set(points.series) == {f"μ(x), label {d}" for d in range(10)} | {"z ~ N(0, I)"}
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
    assert not at.table
    at.button[0].click().run()
    _ok(at)
    files = sorted(os.listdir(os.path.join(tiny_cache, "lab")))
    assert len([f for f in files if f.endswith(".safetensors")]) == 2  # the VAE and the AE, 30 epochs each
    assert len([f for f in files if ".lab-lab6-" in f and f.endswith(".npz")]) == 1  # the page's report, beside the VAE
    assert len([f for f in files if ".lab-lab6-" in f and ".view-" in f]) == 2  # and its two charts' specs
    assert not at.button and len(at.table) == 2
