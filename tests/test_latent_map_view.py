"""The map's data on the server side: the collapse flags (vae_core.latent's rule and named thresholds),
which maps are equal-aspect (the component and the plotly map_figure), the shared label palette, the
measurement-hooks flag in the component's data, and the Explorer sending a big map alone first."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app.components.latent_map import classes_for, equal_aspect, projection_spec
from app.palette import label_colour
from app.views.latent_data import ModelView
from app.views.latent_map import MapProjection
from app.views.map_figure import map_figure
from vae_core.constants import ACTIVE_VAR_THRESHOLD, KL_COLLAPSED_NATS
from vae_core.latent import collapsed_dims, mean_variance
from vae_core.projection import KNNProjection, LatentPlane, fit_pca

TIMEOUT = 600  # a hang guard per AppTest run, not a speed limit


def _view(means: np.ndarray, kl, labels=None) -> ModelView:
    n = len(means)
    labels = np.arange(n) % 3 if labels is None else labels
    return ModelView(np.arange(n), labels, means.astype(np.float32), fit_pca(means), list(kl), n)


def test_collapse_flags_are_vae_core_latents_rule_with_the_named_thresholds():
    """Dim d is collapsed when its KL < KL_COLLAPSED_NATS or Var_x mu_d <= ACTIVE_VAR_THRESHOLD: the
    variances here are set exactly (a +-s pattern has unbiased variance s^2 * n / (n - 1))."""
    n = 1000
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    var = np.array([1.0, 0.0101, 0.0099, 0.5, 0.5, 0.0])
    means = sign * np.sqrt(var * (n - 1) / n)
    kl = [1.0, 1.0, 1.0, KL_COLLAPSED_NATS * 0.99, KL_COLLAPSED_NATS * 1.01, 1.0]
    view = _view(means, kl)
    assert view.collapsed == [False, False, True, True, False, True]
    assert view.collapsed == collapsed_dims(
        kl, mean_variance(torch.from_numpy(means)), kl_threshold=KL_COLLAPSED_NATS, var_threshold=ACTIVE_VAR_THRESHOLD
    )
    assert view.slider_labels()[2] == "z3 · KL 1.00 · collapsed"


def test_pca_and_the_latent_plane_are_equal_aspect_umap_is_not():
    means = np.random.default_rng(0).normal(size=(50, 4))
    pca, plane, knn = fit_pca(means), LatentPlane(2), KNNProjection(means, means[:, :2].copy(), n_neighbors=5)
    assert [equal_aspect(b) for b in (pca, plane, knn)] == [True, True, False]
    assert [projection_spec(b, 4)["equal_aspect"] for b in (pca, plane, knn)] == [True, True, False]


def test_map_figure_is_equal_aspect_for_pca_and_coloured_by_the_shared_palette():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(300, 3)) * [4.0, 0.2, 0.1]  # PC2's range is a twentieth of PC1's
    labels = rng.integers(0, 10, 300)
    view = _view(means, [1.0] * 3, labels)
    pca = MapProjection("pca", view.pca, view.pca.transform(view.means), ("PC1", "PC2"), "")
    fig = map_figure(pca, view, 300, current=np.array([50.0, 0.0]))
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    points = [t for t in fig.data if t.name not in ("current z", "selected")]
    assert {t.name: t.marker.color for t in points} == {str(c): label_colour(c) for c in sorted(set(labels))}
    knn = KNNProjection(view.means, pca.xy.astype(np.float32), n_neighbors=5)
    umap = MapProjection("umap", knn, pca.xy, ("UMAP 1", "UMAP 2"), "")
    assert map_figure(umap, view, 300).layout.yaxis.scaleanchor is None
    assert [c["color"] for c in classes_for(np.array([7, 1]))] == [label_colour(1), label_colour(7)]


def _unpack(blob: bytes) -> dict:
    n = int.from_bytes(blob[:4], "little")
    return json.loads(blob[4 : 4 + n])


def _map_data(at: AppTest) -> dict:
    for el in at.get("bidi_component"):
        if el.proto.component_name.endswith("vae_latent_map"):
            return _unpack(el.proto.bytes)
    raise AssertionError("no latent map on the page")


def _tiny_map_app():
    import numpy as np  # noqa: F811  (AppTest runs this function's source as the script)

    from app.components.latent_map import classes_for, latent_map, points_payload

    xy = np.arange(20, dtype=np.float32).reshape(10, 2)
    latent_map(
        points_payload(xy, np.arange(10) % 2, np.arange(10), xy),
        10,
        {"kind": "plane", "k": 2},
        classes_for(np.arange(10) % 2),
        ("x", "y"),
        key="m",
    )


@pytest.mark.parametrize("env, hooks", [(None, False), ("1", True), ("0", False)])
def test_the_map_installs_its_measurement_hooks_only_with_vae_debug_hooks(monkeypatch, env, hooks):
    if env is None:
        monkeypatch.delenv("VAE_DEBUG_HOOKS", raising=False)
    else:
        monkeypatch.setenv("VAE_DEBUG_HOOKS", env)
    at = AppTest.from_function(_tiny_map_app, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert _map_data(at)["debug"] is hooks


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory):
    """A checkpoint whose test set has just over MAP_ALONE_ABOVE images (8 x 8), with its map cache."""
    from app.views.explorer import MAP_ALONE_ABOVE
    from tests.harness.map_bench import explorer_checkpoint
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.model import VAE

    folder = tmp_path_factory.mktemp("big")
    n = MAP_ALONE_ABOVE + 500
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    images = np.clip(rng.integers(0, 256, (10, 8, 8))[labels] + rng.normal(0, 30, (n, 8, 8)), 0, 255).astype(np.uint8)
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,))).eval()
    explorer_checkpoint(
        str(folder), model, TrainConfig(dataset="digits", epochs=1), images, labels, {"kl_per_dim": [1.0, 0.5, 0.2]}
    )
    return str(folder), n


def test_a_big_map_is_sent_alone_first_and_the_panels_follow_on_the_next_run(big_cache, monkeypatch):
    folder, n = big_cache
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", folder)
    monkeypatch.setenv("VAE_DATA_ROOTS", folder)
    at = AppTest.from_string(
        "import streamlit as st\nfrom app.views import explorer\n"
        "st.set_page_config(layout='wide')\nexplorer.render()\n",
        default_timeout=TIMEOUT,
    )
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    first = _map_data(at)
    assert first["report_drawn"] is True and first["points"]["n_total"] == n  # the points go in this run
    assert not at.number_input and any("Loading the decoder" in c.value for c in at.caption)
    assert not at.radio and [s.key for s in at.selectbox] == ["sidebar_model_select"]  # controls come later too
    at.run()  # the browser's `drawn` trigger reruns the page
    assert not at.exception, [e.message for e in at.exception]
    second = _map_data(at)
    assert second["report_drawn"] is False and second["points"] is None  # not sent twice
    # the panels are there, on the first map point
    assert at.number_input(key="explorer_index").value == at.session_state["explorer_selected"] == first["selected"]
    assert not any("Loading the decoder" in c.value for c in at.caption)
    assert at.radio(key="explorer_projection").value == "PCA" and at.selectbox(key="explorer_colour").value == "label"
