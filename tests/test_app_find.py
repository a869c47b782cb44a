"""Explorer: find and compare points (issue 12 item 9) under streamlit.testing: colour the map by each
point's ELBO / KL / log p(x), the least likely gallery, the selected point's nearest neighbours."""

from __future__ import annotations

import re

import numpy as np
import torch

from tests import test_app as _app_tests
from tests.test_app import (
    _app,
    _ckpt_path,
    _component_data,
    _no_exception,
    _targets_and_model,  # noqa: F401
)
from vae_core.point_stats import read_point_stats
from vae_core.projection import encode_means, point_order
from vae_core.projection_cache import read_cache

# test_app's fixtures, bound here so pytest finds them by name (an import would look unused to a linter)
cache_dir = _app_tests.cache_dir
use_cache = _app_tests.use_cache


def _map_points(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The map's test indices and encoder means, as the page gets them (its projection cache, else
    encoded in point_order)."""
    cached = read_cache(path)
    if cached is not None:
        return cached.index, cached.means
    x, model = _targets_and_model(path)
    index = point_order(len(x))
    return index, encode_means(model, x[torch.from_numpy(index)])


def test_colouring_by_log_px_sends_each_points_value(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    _no_exception(at)
    box = at.selectbox(key="explorer_colour")
    assert {"ELBO", "KL", "log p(x)"} <= set(box.options)
    box.set_value("log p(x)").run()
    _no_exception(at)
    data = _component_data(at, "vae_latent_map")
    assert data["colour"]["mode"] == "value" and data["colour"]["name"] == "log p(x) (nats)"
    index, _ = _map_points(path)
    stats = read_point_stats(path, index)  # computed on demand, then kept beside the checkpoint
    assert stats is not None
    sent = np.frombuffer(data["_blobs"]["values"], "<f4")
    np.testing.assert_allclose(sent, stats["log_px"], rtol=1e-5)
    assert np.all(stats["log_px"] < 0) and np.all(stats["kl"] >= 0)
    at.selectbox(key="explorer_colour").set_value("KL").run()  # another stat: the same cached numbers
    sent = np.frombuffer(_component_data(at, "vae_latent_map")["_blobs"]["values"], "<f4")
    np.testing.assert_allclose(sent, stats["kl"], rtol=1e-5)


def _buttons(at, prefix: str) -> list[int]:
    return [int(b.key[len(prefix) :]) for b in at.button if b.key and b.key.startswith(prefix)]


def test_the_gallery_lists_the_least_likely_points_and_selects_one(use_cache):
    path = _ckpt_path(use_cache, 2)
    at = _app("explorer", path)
    assert not _buttons(at, "explorer_find_ll_")  # nothing computed before it is asked for
    at.button(key="explorer_find_go").click().run()
    _no_exception(at)
    index, _ = _map_points(path)
    log_px = read_point_stats(path, index)["log_px"]
    want = index[np.argsort(log_px, kind="stable")[:16]].tolist()
    assert _buttons(at, "explorer_find_ll_") == want
    shown = [c.value.replace("\\", "") for c in at.caption]  # plain() escapes punctuation
    assert any(t.startswith(f"#{want[0]} · label ") and "log p(x)" in t for t in shown), shown
    at.button(key=f"explorer_find_ll_{want[3]}").click().run()
    assert at.session_state["explorer_selected"] == want[3]


def test_the_selected_points_nearest_neighbours_are_shown(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    index, means = _map_points(path)
    at.number_input(key="explorer_index").set_value(int(index[5])).run()
    _no_exception(at)
    assert _buttons(at, "explorer_find_nn_") == []  # off until asked for (a click must stay cheap)
    at.toggle(key="explorer_find_nn_on").set_value(True).run()
    _no_exception(at)
    d = np.linalg.norm(means - means[5], axis=1)
    d[5] = np.inf
    assert _buttons(at, "explorer_find_nn_") == index[np.argsort(d, kind="stable")[:8]].tolist()
    assert any(f"Nearest neighbours of test #{int(index[5])}" in m.value.replace("\\", "") for m in at.markdown)


def test_the_label_filter_lists_that_labels_map_points(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("explorer", path)
    at.selectbox(key="explorer_find_label").set_value(7).run()
    _no_exception(at)
    index, _ = _map_points(path)
    from app.common import dataset_for
    from vae_core.checkpoints import load_checkpoint

    labels = dataset_for(load_checkpoint(path)).y_test.numpy()[index]
    want = np.sort(index[labels == 7])
    text = next(c.value.replace("\\", "") for c in at.caption if "map points with label 7" in c.value.replace("\\", ""))
    assert text.startswith(f"{len(want):,} map points with label 7: ")
    listed = [int(t) for t in re.findall(r"#(\d+)", text.split(": ", 1)[1].split(". ")[0])]
    assert listed == want[:60].tolist()
