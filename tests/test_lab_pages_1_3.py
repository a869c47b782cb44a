"""Lab pages 1-3 on a tiny checkpoint trained here: each page gets small sizes through render(sizes)."""

import json
import os

import pytest
from streamlit.testing.v1 import AppTest

import vae_core.cache as cache
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """A one-epoch 64-16-2 Bernoulli MLP on sklearn digits (8x8) in a temporary checkpoint cache."""
    d = str(tmp_path_factory.mktemp("ckpts"))
    mc = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(16,))
    tc = TrainConfig(dataset="digits", epochs=1, batch_size=64, seed=0, binarize="dynamic")
    cache.train_or_load(mc, tc, load_dataset("digits"), cache_dir=d, final_iw_samples=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAE_CHECKPOINT_DIR", d)
        yield d


def _page(module: str, sizes: dict | None):
    import importlib

    page = importlib.import_module(module)
    page.render(page.Sizes(**sizes)) if sizes is not None else page.render()


def _run(module: str, sizes: dict | None = None) -> AppTest:
    return AppTest.from_function(_page, args=(module, sizes), default_timeout=600).run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _chart_frames(chart) -> list:
    """The data tables a Vega-Lite chart element sends to the browser (Arrow IPC), as DataFrames."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]


def test_elbo_anatomy_page(tiny_cache):
    at = _run("app.lab.elbo_anatomy", {"k_max": 30, "repeats": 3, "k_ref": 500})
    _ok(at)
    labels = [m.label for m in at.metric]
    assert labels == ["log p(x)", "ELBO", "gap = KL(q(z|x) ‖ p(z|x))"]
    log_px, elbo, gap = (float(m.value.split()[0]) for m in at.metric)
    assert abs(log_px - (elbo + gap)) < 0.02  # the identity the page states, on its own numbers
    bound, gap = at.get("vega_lite_chart")
    rules = {r.label: r.y for f in _chart_frames(bound) if "label" in f for r in f.itertuples()}
    (ref,) = [y for label, y in rules.items() if label.startswith("log p(x) ≈")]
    assert ref == pytest.approx(log_px, abs=0.006)  # the dashed line is the metric's log p(x)
    assert rules[f"ELBO = {elbo:.2f}"] == pytest.approx(elbo, abs=0.006)
    (curve,) = [f for f in _chart_frames(gap) if "lo" in f]  # gap log p(x) - L_K with its error bars
    assert (
        curve.x.iloc[0] == 1 and curve.x.iloc[-1] == 30 and (curve.hi >= curve.y).all() and (curve.lo <= curve.y).all()
    )
    (table,) = [m.value for m in at.markdown if m.value.startswith("| K | L_K mean")]  # under "Numbers"
    cells = [[float(c) for c in line.strip("| ").split(" | ")] for line in table.splitlines()[2:]]
    assert [c[0] for c in cells] == curve.x.tolist()  # one row per K of the curves
    for _k, mean, se, gap_k in cells:
        assert gap_k == pytest.approx(log_px - mean, abs=0.012) and se >= 0  # the gap is log p(x) − L_K
    at.run()  # a rerun reuses the stored result and redraws it
    _ok(at)
    assert [m.value for m in at.metric][0] == f"{log_px:.2f} nats"
    at.number_input(key="lab1_index").set_value(3).run()  # another image recomputes cleanly
    _ok(at)


def test_a_damaged_report_file_is_rebuilt_and_the_page_shows_the_same_numbers(tiny_cache):
    """The stored report beside the checkpoint is disposable: garbage in it costs a recomputation, not a
    traceback, and the rebuilt file is read on the next server start."""
    import glob

    from app.lab.report_store import _shared_results
    from vae_core.lab.elbo_anatomy import Anatomy
    from vae_core.lab.report_cache import ReportCacheWarning, load_report

    sizes = {"k_max": 30, "repeats": 3, "k_ref": 500}
    first = [m.value for m in _run("app.lab.elbo_anatomy", sizes).metric]
    (path,) = [
        p
        for p in glob.glob(os.path.join(tiny_cache, "*.lab-lab1-*.npz"))  # this image's, of those stored
        if f"{load_report(p, Anatomy).log_px:.2f} nats" == first[0]
    ]
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 garbage")
    _shared_results.clear()  # as after a server restart: only the disk copy is left
    with pytest.warns(ReportCacheWarning, match="recomputing"):
        at = _run("app.lab.elbo_anatomy", sizes)
    _ok(at)
    assert [m.value for m in at.metric] == first  # same seed, same numbers
    assert load_report(path, Anatomy).log_px == pytest.approx(float(first[0].split()[0]), abs=0.005)


def test_importance_sampling_page(tiny_cache):
    at = _run("app.lab.importance_sampling", {"n_max": 100, "repeats": 2, "toy": True})
    _ok(at)
    assert len(at.get("vega_lite_chart")) == 4  # model: estimates + ESS; toy: estimates + ESS
    rows = at.table[0].value.reset_index()
    assert set(rows["proposal"]) == {"prior", "posterior"}
    # issue 12.7: N_max = 100 is one table size, said once (it read "At N = 100 and N = 100")
    assert "At **N = 100** (2 repeats each):" in [m.value for m in at.markdown]
    assert list(rows["N"]) == [100, 100]
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in at.get("vega_lite_chart")]
    assert " ".join(titles[1]) == "How many draws carry the estimate"
    assert max(len(line) for t in titles for line in t) <= 40, titles  # a half-width chart shows its whole title
    at.toggle(key="lab2_toy").set_value(False).run()  # rerun without resampling, toy hidden
    _ok(at)
    assert len(at.get("vega_lite_chart")) == 2


def test_gradient_estimators_page(tiny_cache):
    at = _run("app.lab.gradient_estimators", {"batch": 2, "l_max": 4, "repeats": 4, "subset": "all"})
    _ok(at)
    assert [m.label for m in at.metric][:2] == ["score / reparam variance at L=1", "score+LOO / reparam at L=2"]
    assert len(at.get("vega_lite_chart")) == 2
    at.multiselect(key="lab3_estimators").set_value([]).run()
    _ok(at)
    assert "Pick at least one estimator." in [i.value for i in at.info]


def test_pages_say_so_when_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    for module in ("app.lab.elbo_anatomy", "app.lab.importance_sampling", "app.lab.gradient_estimators"):
        at = _run(module)
        assert not at.exception
        assert any("No checkpoints" in w.value for w in at.sidebar.warning)


def test_importance_table_heading_names_each_size_once():
    from app.lab.importance_sampling import table_heading

    assert table_heading(100, 5) == ("At **N = 100** (5 repeats each):", [100])
    assert table_heading(1000, 5) == ("At **N = 1000** (5 repeats each):", [1000])
    assert table_heading(10000, 3) == ("At **N = 1000** and **N = 10000** (3 repeats each):", [1000, 10000])
