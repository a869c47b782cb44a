"""Explorer overlays under streamlit.testing (issue 12 items 9 and 10): the label picked in "Map points
by label" reaches the map as its highlight without resending the points, and the selected point's
q(z|x) (its numbers in the latent-plane panel, its samples sent to the map) is the encoder's."""

from __future__ import annotations

import re

import numpy as np
import torch

from tests import test_app as _app_tests
from tests.test_app import _app, _ckpt_path, _component_data, _no_exception, _targets_and_model
from vae_core.latent import posterior_samples

# test_app's fixtures, bound here so pytest finds them by name (an import would look unused to a linter)
cache_dir = _app_tests.cache_dir
use_cache = _app_tests.use_cache


def test_the_picked_label_is_the_maps_highlight_and_the_points_are_not_resent(use_cache):
    at = _app("explorer", _ckpt_path(use_cache, 3))
    _no_exception(at)
    first = _component_data(at, "vae_latent_map")
    assert first["highlight"] is None  # nothing dimmed until asked
    assert at.selectbox(key="explorer_find_label").value is None
    at.selectbox(key="explorer_find_label").set_value(7).run()
    _no_exception(at)
    data = _component_data(at, "vae_latent_map")
    assert data["highlight"] == 7
    assert data["points"] is None and data["points_id"] == first["points_id"]  # a small parameter only
    legend = {c["label"] for c in data["classes"]}
    assert 7 in legend
    at.selectbox(key="explorer_find_label").set_value(None).run()
    assert _component_data(at, "vae_latent_map")["highlight"] is None


def _numbers(caption: str) -> dict[int, tuple[float, float]]:
    """{dim (1-based): (mu, sigma)} from 'z3: μ = 0.1234, σ = 0.0456; z1: ...'."""
    found = re.findall(r"z(\d+): μ = (-?\d+\.\d+), σ = (\d+\.\d+)", caption)
    return {int(d): (float(m), float(s)) for d, m, s in found}


def test_the_selected_points_posterior_is_the_encoders(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    at.number_input(key="explorer_index").set_value(17).run()
    _no_exception(at)
    x, model = _targets_and_model(path)
    with torch.no_grad():
        mu, logvar = model.encode(x[17][None])
    mu, sigma = mu[0].numpy(), torch.exp(0.5 * logvar[0]).numpy()
    # the panel is off by default (no plotly chart on the explorer until asked for), then switched on
    assert not any(c.value.startswith("Test #17 · ") for c in at.caption)
    at.toggle(key="explorer_unc_plane").set_value(True).run()
    _no_exception(at)
    # the panel: the two dims of highest average KL by default, with the encoder's numbers
    text = next(c.value for c in at.caption if c.value.startswith("Test #17 · "))
    nums = _numbers(text)
    assert len(nums) == 2
    for d, (m, s) in nums.items():
        assert abs(m - mu[d - 1]) < 1e-4 and abs(s - sigma[d - 1]) < 1e-4, (d, m, s, mu, sigma)
    from app.views.latent_data import model_view
    from vae_core.checkpoints import load_checkpoint

    kl_per_dim = np.asarray(model_view(load_checkpoint(path)).kl_per_dim)
    assert sorted(nums) == sorted(int(d) + 1 for d in np.argsort(-kl_per_dim)[:2])
    # the map's cloud: the same seeded draws from q(z|x), for this point and the map's point set
    cloud = _component_data(at, "vae_map_cloud")
    want = posterior_samples(model, x[17], 64, torch.Generator().manual_seed(0)).numpy()
    assert cloud["testIndex"] == 17 and cloud["meta"] == "vae-latent-map"
    assert cloud["points_id"] == _component_data(at, "vae_latent_map")["points_id"]
    np.testing.assert_allclose(np.array(cloud["z"]), want, atol=1e-5)
    # other dims picked: their numbers
    at.selectbox(key="explorer_unc_x").set_value(0).run()
    at.selectbox(key="explorer_unc_y").set_value(1).run()
    text = next(c.value for c in at.caption if c.value.startswith("Test #17 · "))
    got = _numbers(text)
    assert set(got) == {1, 2}
    np.testing.assert_allclose([got[1][0], got[2][0]], mu[:2], atol=1e-4)
    np.testing.assert_allclose([got[1][1], got[2][1]], sigma[:2], atol=1e-4)
    # the toggle off: the map gets no cloud
    at.toggle(key="explorer_cloud_on").set_value(False).run()
    assert _component_data(at, "vae_map_cloud")["z"] is None
