"""app.lab.spec_store: a lab chart's Vega-Lite spec is kept beside its report and read back instead of
being built again; a damaged or foreign file is rebuilt, a folder that cannot be written costs nothing but
the file, and a change to the code that draws a chart names a new file."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.lab import report_store, spec_store
from app.lab.charts import Line, line_chart, vega_lite


@dataclass
class Report:
    y: np.ndarray


def _spec(r: Report) -> dict:
    return vega_lite(line_chart([Line("y", np.arange(len(r.y)), r.y)], "a chart", "x", "y"))


@pytest.fixture
def stored(tmp_path):
    """A report that lab_report would have read from tmp_path/r.lab-x-0.npz, and a counting builder."""
    report = Report(np.linspace(0, 1, 7))
    report_store._remember_file(report, str(tmp_path / "r.lab-x-0.npz"))
    calls = []

    def build():
        calls.append(1)
        return _spec(report)

    return report, build, calls


def test_a_spec_round_trips_through_its_file():
    spec = _spec(Report(np.array([1.0, 2.0, 4.0])))
    assert spec["datasets"] and all(isinstance(v, bytes) for v in spec["datasets"].values())
    assert spec_store.decode(spec_store.encode(spec)) == spec


def test_the_spec_is_built_once_then_read_from_beside_its_report(stored, tmp_path):
    report, build, calls = stored
    first = spec_store.stored_spec(report, "line", build, [__file__])
    (path,) = glob.glob(str(tmp_path / "r.lab-x-0.view-*.json"))
    again = spec_store.stored_spec(report, "line", build, [__file__])  # as a restarted server would
    assert calls == [1] and again == first
    assert spec_store.stored_spec(report, "another view", build, [__file__]) == first and calls == [1, 1]
    assert len(glob.glob(str(tmp_path / "*.view-*.json"))) == 2 and os.path.exists(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"format": 99, "spec": {}, "datasets": {}}',
        b'{"format": 1, "spec": {}, "datasets": {"a": "%%%"}}',
        b"[1, 2]",
    ],
)
def test_a_damaged_or_foreign_file_is_rebuilt_and_replaced(stored, tmp_path, content):
    report, build, calls = stored
    want = spec_store.stored_spec(report, "line", build, [__file__])
    (path,) = glob.glob(str(tmp_path / "*.view-*.json"))
    with open(path, "wb") as f:
        f.write(content)
    assert spec_store.stored_spec(report, "line", build, [__file__]) == want and calls == [1, 1]
    assert spec_store._read(path) == want  # replaced by a good one


def test_a_folder_that_cannot_be_written_only_loses_the_file(stored, tmp_path, monkeypatch):
    report, build, calls = stored

    def refuse(path, data, **kw):
        raise PermissionError(13, "read-only", path)

    monkeypatch.setattr(spec_store, "atomic_write_bytes", refuse)
    assert spec_store.stored_spec(report, "line", build, [__file__]) == _spec(report)
    assert glob.glob(str(tmp_path / "*.view-*.json")) == []


def test_editing_the_code_that_draws_it_names_a_new_file(tmp_path):
    code = tmp_path / "page.py"
    code.write_text("A = 1\n")
    before = spec_store.spec_key("line", [str(code)])
    code2 = tmp_path / "page2.py"
    code2.write_text("A = 2\n")
    assert spec_store.spec_key("line", [str(code2)]) != before
    assert spec_store.spec_key("other", [str(code)]) != before
    assert spec_store.spec_key("line", [str(code)]) == before


def test_a_report_made_elsewhere_is_not_stored(tmp_path):
    report = Report(np.ones(3))
    assert spec_store.stored_spec(report, "line", lambda: _spec(report), [__file__]) == _spec(report)
    assert glob.glob(str(tmp_path / "*.json")) == []


def _lab1(folder: str) -> None:
    import streamlit as st

    from app.lab import elbo_anatomy

    st.cache_resource.clear()  # as a restarted server: nothing in memory, the files on disk
    elbo_anatomy.render(elbo_anatomy.Sizes(k_max=30, repeats=3, k_ref=500))


def test_a_lab_page_after_a_restart_sends_the_stored_specs_without_building_them(tmp_path, monkeypatch):
    """Lab 1 on a tiny model: its first run stores its two charts' specs; the next run, with every
    in-memory cache cleared, sends the same charts while building no chart at all."""
    import vae_core.cache as cache
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.data import load_dataset

    mc = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(16,))
    tc = TrainConfig(dataset="digits", epochs=1, batch_size=64, seed=0, binarize="dynamic")
    cache.train_or_load(mc, tc, load_dataset("digits"), cache_dir=str(tmp_path), final_iw_samples=5)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(tmp_path))
    first = AppTest.from_function(_lab1, args=(str(tmp_path),), default_timeout=600).run()
    assert not first.exception
    assert len(glob.glob(str(tmp_path / "*.view-*.json"))) == 2
    sent = [c.proto.spec for c in first.get("vega_lite_chart")]

    import app.lab.charts as charts

    def no_building(*a, **k):
        raise AssertionError("a chart was built although its spec is on disk")

    monkeypatch.setattr(charts, "vega_lite", no_building)
    again = AppTest.from_function(_lab1, args=(str(tmp_path),), default_timeout=600).run()
    assert not again.exception, [e.value for e in again.exception]
    assert [c.proto.spec for c in again.get("vega_lite_chart")] == sent
