"""Compare two models (issue 12 item 13) under streamlit.testing: per-point numbers of both models equal
the estimator's, the alignment residual shown is the one of the two maps, the same z goes to both
decoders, and models on other data are refused with the reason.

Four tiny MLPs trained here on the embedded `digits` set (no download): A and B (k = 3, seeds 0 and 1),
C (k = 2) and D (k = 3 on another test split), and a copy of B with NaN weights."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from vae_core.cache import train_or_load
from vae_core.checkpoints import load_checkpoint, read_metadata
from vae_core.compare_models import align_maps
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import eval_targets, load_dataset
from vae_core.latent import decode, elbo_breakdown, encode_mean
from vae_core.projection import encode_means, fit_pca, point_order

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit (loaded 2-core machines)


@pytest.fixture(scope="module")
def models(tmp_path_factory, copy_checkpoint) -> dict:
    folder = tmp_path_factory.mktemp("ckpts")
    data = load_dataset("digits")
    out = {}
    for name, k, seed, fraction in (("a", 3, 0, 0.2), ("b", 3, 1, 0.2), ("c", 2, 0, 0.2), ("d", 3, 0, 0.3)):
        d = data if fraction == 0.2 else load_dataset("digits", test_fraction=fraction)
        ck, _ = train_or_load(
            ModelConfig(input_shape=data.input_shape, latent_dim=k, hidden=(32,)),
            TrainConfig(dataset="digits", epochs=2, binarize="dynamic", seed=seed, test_fraction=fraction),
            d,
            cache_dir=str(folder),
            final_iw_samples=5,
        )
        out[name] = ck.path
    # listed before the others (its header reads), but its weights do not load: never the default B
    out["nan"] = copy_checkpoint(out["b"], str(folder / "a_nan_weights.safetensors"), nan=True)
    out["folder"] = str(folder)
    return out


def _app(models, monkeypatch, b: str) -> AppTest:
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", models["folder"])
    script = (
        "import streamlit as st\nfrom app.views import compare\n"
        f"st.session_state.setdefault('sidebar_model_path', {models['a']!r})\n"
        f"st.session_state.setdefault('compare_model_b', {models[b]!r})\n"
        "st.set_page_config(layout='wide')\ncompare.render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _targets(path: str):
    ck = load_checkpoint(path)
    data = load_dataset(ck.train_config.dataset, test_fraction=ck.train_config.test_fraction)
    return eval_targets(data.x_test, ck.train_config.binarize), ck.model


def _text(el) -> str:
    return el.value.replace("\\", "")  # plain() escapes punctuation


def test_the_same_test_point_shows_each_models_estimator_values(models, monkeypatch):
    at = _app(models, monkeypatch, "b")
    at.number_input(key="compare_index").set_value(7).run()
    assert not at.exception
    shown = [(m.label, m.value) for m in at.metric]
    assert len(shown) == 8  # four numbers for A, then four for B
    for half, name in ((shown[:4], "a"), (shown[4:], "b")):
        x, model = _targets(models[name])
        want = elbo_breakdown(model, x[7], k=100, seed=0)
        assert dict(half) == {
            "ELBO": f"{want.elbo:.2f}",
            "log p(x) (K = 100)": f"{want.log_px:.2f}",
            "recon E_q log p(x|z)": f"{want.recon:.2f}",
            "KL(q(z|x) ‖ p(z))": f"{want.kl:.2f}",
        }
    assert shown[0][1] != shown[4][1]  # two different models, two different ELBOs for the same x
    assert "Test example #7 in both" in [s.value for s in at.subheader]


def _pca_map(path: str) -> np.ndarray:
    """A model's PCA map of its test means in the map's point order, computed here."""
    x, model = _targets(path)
    means = encode_means(model, x[torch.from_numpy(point_order(len(x)))])
    return fit_pca(means).transform(means)


def test_the_alignment_residual_shown_is_that_of_the_two_maps(models, monkeypatch):
    at = _app(models, monkeypatch, "b")
    caption = next(_text(c) for c in at.caption if c.value.startswith("Alignment residual"))
    want = align_maps(_pca_map(models["a"]), _pca_map(models["b"]))
    assert 0 < want.relative < 1
    m = re.match(r"Alignment residual ([0-9.]+) \(([0-9.]+)% of the spread", caption)
    assert m, caption
    assert float(m.group(1)) == pytest.approx(want.residual, abs=6e-4)
    assert float(m.group(2)) == pytest.approx(100 * want.relative, abs=0.06)


def test_the_same_z_goes_to_both_decoders_when_the_dims_match(models, monkeypatch):
    at = _app(models, monkeypatch, "b")
    at.number_input(key="compare_index").set_value(3).run()
    x, model_a = _targets(models["a"])
    mu = encode_mean(model_a, x[3:4])[0]
    z_caption = next(_text(c) for c in at.caption if c.value.startswith("z = "))
    assert z_caption.startswith(f"z = ({', '.join(f'{v:.2f}' for v in mu.tolist())}), |z| = {float(mu.norm()):.2f}")
    # the images the page decoded are E[x|z] of that z under each decoder (pixels compared in the browser test)
    _, model_b = _targets(models["b"])
    assert not torch.allclose(decode(model_a, mu[None]), decode(model_b, mu[None]))
    at.radio(key="compare_z_from").set_value("z = 0").run()
    assert any(_text(c).startswith("z = (0.00, 0.00, 0.00), |z| = 0.00") for c in at.caption)


def test_models_with_other_latent_dims_get_their_own_mu_instead(models, monkeypatch):
    at = _app(models, monkeypatch, "c")
    info = " ".join(_text(i) for i in at.info)
    assert "A has 3 latent dims and B has 2: the same z cannot be fed to both decoders" in info
    assert not at.get("radio") or all(r.key != "compare_z_from" for r in at.radio)
    assert len(at.metric) == 8  # the per-point numbers are still shown for both


def test_a_model_on_another_test_split_is_refused_with_the_reason(models, monkeypatch):
    at = _app(models, monkeypatch, "d")
    errors = [_text(e) for e in at.error]
    assert len(errors) == 1 and "another test split" in errors[0], errors
    assert "Only models trained on the same dataset and test split can be compared point by point" in errors[0]
    assert not at.metric  # nothing compared
    # the default B, with no choice made, is a comparable model that opens (not the NaN copy listed first)
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", models["folder"])
    at2 = AppTest.from_string(
        "import streamlit as st\nfrom app.views import compare\n"
        f"st.session_state.setdefault('sidebar_model_path', {models['a']!r})\ncompare.render()\n",
        default_timeout=TIMEOUT,
    ).run()
    assert at2.selectbox(key="compare_model_b").options[0].startswith("a_nan_weights")
    assert at2.selectbox(key="compare_model_b").value in (models["b"], models["c"])
    assert not at2.error and len(at2.metric) == 8


def test_the_metrics_table_shows_both_models_stored_numbers(models, monkeypatch):
    at = _app(models, monkeypatch, "b")
    table = at.table[0].value
    for col, name in (("A", "a"), ("B", "b")):
        m = read_metadata(models[name])["metrics"]
        cells = [str(v).replace("\\", "") for v in table[col]]
        assert cells[0] == f"{m['elbo']:.2f}" and cells[2] == f"{m['kl']:.2f}"
        assert cells[3] == f"{m['log_likelihood']:.2f} (K = {m['iw_samples']})"
        assert cells[4] == f"{m['active_units']} / 3"
    assert os.path.basename(models["a"]) != os.path.basename(models["b"])


def test_the_explorers_z_is_offered_and_decoded_when_it_belongs_to_model_a(models, monkeypatch):
    from app.components.z_sync import ZSync

    at = _app(models, monkeypatch, "b")
    assert "the explorer's z" not in at.radio(key="compare_z_from").options  # the explorer has no z yet
    at.session_state["explorer_z"] = ZSync([0.5, -1.25, 2.0])
    at.session_state["explorer_model"] = models["a"]
    at.run()
    at.radio(key="compare_z_from").set_value("the explorer's z").run()
    assert not at.exception
    assert any(_text(c).startswith("z = (0.50, -1.25, 2.00), |z| = 2.41: the explorer's z") for c in at.caption)


def test_the_explorer_links_to_the_compare_page(models, monkeypatch):
    """The explorer's panels end with a link to this page (pages never import each other: by url_path)."""
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", models["folder"])
    script = (
        "import streamlit as st\nfrom app.views import explorer\n"
        f"st.session_state.setdefault('sidebar_model_path', {models['a']!r})\n"
        "st.set_page_config(layout='wide')\nexplorer.render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    links = [(e.proto.label, e.proto.page) for e in at.get("page_link")]
    assert any(page.endswith("compare") and "Compare" in label for label, page in links), links


def _maps(at: AppTest) -> dict[str, dict]:
    """The two canvas maps the page sent, by their key's last letter (a, b)."""
    from tests.test_app import _unpack

    maps = {}
    for el in at.get("bidi_component"):
        if el.proto.component_name == "vae_latent_map":
            data = _unpack(el.proto.bytes)
            maps[data["key"][-1]] = data
    return maps


def test_both_maps_are_canvas_maps_in_one_box_with_the_point_ringed(models, monkeypatch):
    """The maps are the explorer's canvas map: A's PCA map and B's aligned onto it, drawn in the same data
    box, the same test point ringed, no star (neither map places a z), and no server path in what the
    browser gets."""
    at = _app(models, monkeypatch, "b")
    maps = _maps(at)
    assert set(maps) == {"a", "b"}
    a, b = maps["a"], maps["b"]
    assert a["meta"] != b["meta"] and a["proj"]["kind"] == b["proj"]["kind"] == "none"
    assert a["proj"]["equal_aspect"] and b["proj"]["equal_aspect"]  # PCA maps: one unit as long across as up
    assert a["view"] == b["view"] and a["z"] is None and b["z"] is None
    first = at.number_input(key="compare_index").value
    assert a["selected"] == b["selected"] == first
    xy_a = np.frombuffer(a["_blobs"]["points.xy"], "<f4").reshape(-1, 2)
    xy_b = np.frombuffer(b["_blobs"]["points.xy"], "<f4").reshape(-1, 2)
    want = align_maps(_pca_map(models["a"]), _pca_map(models["b"]))
    np.testing.assert_allclose(xy_a, _pca_map(models["a"]), atol=1e-4)
    np.testing.assert_allclose(xy_b, want.aligned, atol=1e-4)
    both = np.concatenate([xy_a, xy_b])
    assert a["view"]["x0"] < both[:, 0].min() and a["view"]["x1"] > both[:, 0].max()
    assert a["view"]["y0"] < both[:, 1].min() and a["view"]["y1"] > both[:, 1].max()
    for data in (a, b):
        assert models["folder"] not in json.dumps({k: v for k, v in data.items() if k != "_blobs"})


def test_a_click_on_either_map_selects_that_test_point_on_both(models, monkeypatch):
    """A click arrives as the map's trigger {"select": test #}; its callback selects that test point, and
    the next run rings it on both maps and shows both models' numbers for it."""
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", models["folder"])

    def script(a: str, b: str) -> None:
        import streamlit as st

        from app.views import compare

        st.session_state.setdefault("sidebar_model_path", a)
        st.session_state.setdefault("compare_model_b", b)
        click = st.session_state.pop("click", None)
        if click is not None:  # what the browser's trigger does before the run: the callback
            st.session_state["compare_map_b"] = {"select": click}
            compare._on_map("b")
            del st.session_state["compare_map_b"]
        compare.render()

    at = AppTest.from_function(script, args=(models["a"], models["b"]), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    target = int(np.frombuffer(_maps(at)["b"]["_blobs"]["points.index"], "<i4")[7])
    assert target != at.number_input(key="compare_index").value
    at.session_state["click"] = target
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.number_input(key="compare_index").value == target
    assert {m["selected"] for m in _maps(at).values()} == {target}
    assert any(f"Test example #{target} in both" in h.value for h in at.subheader)
