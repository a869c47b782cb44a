"""The map's data on the server side: the collapse flags (vae_core.latent's rule and named thresholds),
which maps are equal-aspect, the overlays, the shared label palette, the
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


def test_overlays_and_legend_colours_are_the_shared_palette():
    """classes_for gives every page the same colour per label; overlay paths and marks are plain JSON
    in data units, and a mark refuses a symbol the browser cannot draw."""
    from app.components.latent_map import overlay_mark, overlay_path

    path = overlay_path("linear path", np.array([[0.0, 1.0], [2.5, -1.0]], np.float32), "#111111")
    assert path == {"name": "linear path", "color": "#111111", "xy": [[0.0, 1.0], [2.5, -1.0]]}
    mark = overlay_mark("start", np.array([1.5, 2.0]), "#1b9e77", "diamond", text="start")
    assert mark["xy"] == [1.5, 2.0] and mark["symbol"] == "diamond" and mark["text"] == "start"
    json.dumps([path, mark])
    with pytest.raises(ValueError, match="symbol must be one of"):
        overlay_mark("x", [0, 0], "#000", "star")
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
