"""The canvas latent map: its JS projection (project.mjs, run by node) against vae_core.projection, and
the point payload it is sent.

The star the browser places while a slider moves must land where the server would put it, so the
browser's plane / PCA / UMAP-kNN placement is checked against the Python transforms on the same
base64 payload the component receives.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from app.components.latent_map import classes_for, points_payload, projection_spec
from vae_core.projection import KNNProjection, LatentPlane, fit_pca

PROJECT_JS = os.path.join(os.path.dirname(__file__), "..", "vae_core", "js", "project.mjs")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the map's JS")

# Reads {payload, spec, zs}, decodes the payload as the component does, prints project() of each z.
_RUNNER = """
import { project, f32, i32, b64ToBytes, ticks } from %s;
const LABELS = { u1: Uint8Array, i2: Int16Array, i4: Int32Array };
let text = "";
for await (const chunk of process.stdin) text += chunk;
const { payload, spec, zs } = JSON.parse(text);
const means = f32(payload.means), xy = f32(payload.xy);
const proj = spec.kind === "knn" ? { ...spec, means, xy } : spec;
process.stdout.write(JSON.stringify({
  out: zs.map((z) => project(proj, z)),
  labels: Array.from(new LABELS[payload.labels_dtype](b64ToBytes(payload.labels).buffer)), index: Array.from(i32(payload.index)),
  ticks: ticks(-2.7, 3.1),
}));
"""  # noqa: E501


def run_js(payload: dict, spec: dict, zs: np.ndarray) -> dict:
    src = _RUNNER % json.dumps("file://" + os.path.abspath(PROJECT_JS))
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src],
        capture_output=True,
        text=True,
        input=json.dumps({"payload": payload, "spec": spec, "zs": zs.tolist()}),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def clustered_means(n=400, k=6, seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means in 4 clusters with a 2-D 'embedding' that is a fixed nonlinear function of them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.5, (4, k))
    lab = rng.integers(0, 4, n)
    means = (centres[lab] + rng.normal(0, 0.4, (n, k))).astype(np.float32)
    emb = np.stack([np.tanh(means[:, 0]) * 5 + means[:, 1], means[:, 2] ** 2 - means[:, 3]], 1).astype(np.float32)
    return means, emb, lab


def queries(means: np.ndarray, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = means.shape[1]
    return np.concatenate(
        [
            means[:3].astype(np.float64),  # exactly a plotted mean: its own position
            means[3:8] + rng.normal(0, 0.05, (5, k)),  # near a mean
            rng.normal(0, 1.5, (10, k)),  # between clusters
            np.full((1, k), 9.0),  # far outside (the slider corner and beyond)
        ]
    )


@needs_node
def test_knn_placement_matches_python():
    means, emb, lab = clustered_means()
    basis = KNNProjection(means, emb, n_neighbors=15)
    payload = points_payload(emb, lab, np.arange(len(means)) * 3, means)
    zs = queries(means)
    js = run_js(payload, projection_spec(basis, means.shape[1]), zs)
    np.testing.assert_allclose(np.array(js["out"]), basis.transform(zs), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(js["labels"], lab)
    np.testing.assert_array_equal(js["index"], np.arange(len(means)) * 3)


@needs_node
def test_pca_and_plane_placement_match_python():
    means, emb, lab = clustered_means(k=5)
    payload = points_payload(emb, lab, np.arange(len(means)), means)
    zs = queries(means)
    pca = fit_pca(means)
    js = run_js(payload, projection_spec(pca, 5), zs)
    np.testing.assert_allclose(np.array(js["out"]), pca.transform(zs), rtol=1e-6, atol=1e-6)
    for k in (1, 2):
        m2 = means[:, :k]
        plane = LatentPlane(k)
        js = run_js(
            points_payload(plane.transform(m2), lab, np.arange(len(m2)), m2), projection_spec(plane, k), zs[:, :k]
        )
        np.testing.assert_allclose(np.array(js["out"]), plane.transform(zs[:, :k]), atol=1e-12)


@needs_node
def test_axis_ticks_are_round_numbers_covering_the_range():
    means, emb, lab = clustered_means(n=20)
    js = run_js(points_payload(emb, lab, np.arange(20), means), {"kind": "plane", "k": 6}, means[:1])
    assert js["ticks"] == [-2, -1, 0, 1, 2, 3]


def test_points_payload_round_trips_and_rejects_mismatched_arrays():
    means, emb, lab = clustered_means(n=50, k=4)
    p = points_payload(emb, lab, np.arange(50), means)
    assert (p["n_total"], p["k"]) == (50, 4)
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(p["means"]), "<f4").reshape(50, 4), means)
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(p["xy"]), "<f4").reshape(50, 2), emb)
    assert points_payload(emb, lab, np.arange(50), means)["id"] == p["id"]
    moved = emb.copy()
    moved[7, 0] += 1
    assert points_payload(moved, lab, np.arange(50), means)["id"] != p["id"], "the id must follow the content"
    with pytest.raises(ValueError, match="disagree"):
        points_payload(emb[:49], lab, np.arange(50), means)


@needs_node
@pytest.mark.parametrize(
    "labels, dtype",
    [(np.arange(60) % 10, "u1"), (np.r_[np.full(30, -1), np.arange(30)], "i2"), (np.arange(60) * 1000, "i4")],
)
def test_labels_go_in_the_smallest_integer_type_and_decode_in_the_browser(labels, dtype):
    means, emb, _ = clustered_means(n=60, k=4)
    p = points_payload(emb, labels, np.arange(60), means)
    assert p["labels_dtype"] == dtype and len(base64.b64decode(p["labels"])) == 60 * int(dtype[1])
    js = run_js(p, {"kind": "plane", "k": 4}, np.zeros((1, 4)))
    np.testing.assert_array_equal(js["labels"], labels)


def test_legend_classes_in_label_order_and_unlabelled_points():
    c = classes_for(np.array([3, 1, 3, 0]))
    assert [e["label"] for e in c] == [0, 1, 3] and [e["name"] for e in c] == ["0", "1", "3"]
    assert len({e["color"] for e in c}) == 3
    assert classes_for(np.full(5, -1)) == [{"label": -1, "name": "points", "color": c[0]["color"]}]


def test_projection_spec_rejects_unknown_bases():
    with pytest.raises(TypeError, match="no browser projection"):
        projection_spec(object(), 3)
