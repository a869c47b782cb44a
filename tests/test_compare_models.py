"""vae_core.compare_models: map alignment against maps made by a known similarity, compatibility of two
checkpoint headers, and the rows two maps share."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core.compare_models import align_maps, compatible, shared_rows, stored_metrics, target_note


def _similarity(xy: np.ndarray, angle: float, scale: float, shift, reflect: bool = False) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.array([[c, -s], [s, c]])
    if reflect:
        r = r @ np.diag([1.0, -1.0])
    return scale * xy @ r + np.asarray(shift)


@pytest.mark.parametrize("reflect", [False, True])
def test_a_rotated_scaled_shifted_copy_aligns_back_exactly(reflect):
    a = np.random.default_rng(0).normal(size=(200, 2)) * [3.0, 1.0]
    b = _similarity(a, 1.1, 0.25, [5.0, -7.0], reflect)
    al = align_maps(a, b)
    np.testing.assert_allclose(al.aligned, a, atol=1e-9)
    assert al.residual < 1e-9 and al.relative < 1e-9
    assert al.scale == pytest.approx(4.0)  # undoes the 0.25
    np.testing.assert_allclose(al.rotation.T @ al.rotation, np.eye(2), atol=1e-12)


def test_the_residual_is_the_rms_distance_left_and_unrelated_maps_score_near_one():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 2))
    noise = rng.normal(size=(500, 2)) * 0.1
    al = align_maps(a, _similarity(a + noise, 0.3, 2.0, [1.0, 1.0]))
    # back in A's units the noise is 0.1 per coordinate: RMS distance about 0.1 * sqrt(2)
    assert al.residual == pytest.approx(0.1 * np.sqrt(2), rel=0.15)
    assert al.residual == pytest.approx(np.sqrt(((al.aligned - a) ** 2).sum(1).mean()))
    unrelated = align_maps(a, rng.normal(size=(500, 2)))
    assert unrelated.relative > 0.9  # independent layouts: almost nothing of B fits A
    assert 0.0 <= unrelated.relative <= 1.0


def test_aligning_maps_of_different_points_is_refused():
    with pytest.raises(ValueError, match="same 2 or more points"):
        align_maps(np.zeros((5, 2)), np.zeros((4, 2)))


def _meta(
    name="mnist-5k", fingerprint="f1", test_fraction=0.2, n_test=1000, likelihood="bernoulli", binarize="dynamic"
):
    return {
        "dataset": {"name": name, "fingerprint": fingerprint, "n_test": n_test},
        "train_config": {"dataset": name, "test_fraction": test_fraction, "binarize": binarize},
        "model_config": {"likelihood": likelihood},
        "metrics": {"elbo": -100.0, "recon": -80.0, "kl": 20.0, "log_likelihood": -95.0, "active_units": 7},
    }


def test_models_on_the_same_data_and_split_are_compatible():
    assert compatible(_meta(), _meta()) is None


def test_other_datasets_or_splits_are_refused_with_the_reason():
    msg = compatible(_meta(), _meta(name="digits", fingerprint="f2", n_test=360))
    assert msg.startswith("Model B was trained on digits (test fraction 0.2, 360 test images), model A on mnist-5k")
    assert "another dataset" in msg and "same dataset and test split" in msg
    assert "another test split" in compatible(_meta(), _meta(test_fraction=0.1, n_test=500))
    assert "other data under the same dataset name" in compatible(_meta(), _meta(fingerprint="other"))


def test_a_note_when_the_models_see_different_targets():
    assert target_note(_meta(), _meta()) is None
    note = target_note(_meta(), _meta(likelihood="gaussian", binarize="none"))
    assert "A: bernoulli likelihood, binarize dynamic; B: gaussian, binarize none" in note


def test_shared_rows_pair_the_same_test_points():
    ia, ib = np.array([5, 2, 9, 7]), np.array([7, 1, 5, 9])
    ra, rb = shared_rows(ia, ib)
    assert ra.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(ia[ra], ib[rb])


def test_stored_metrics_reads_the_header_and_marks_what_is_missing():
    m = stored_metrics(_meta())
    assert (m["ELBO"], m["recon"], m["KL"], m["log p(x)"], m["active units"]) == (-100.0, -80.0, 20.0, -95.0, 7)
    assert stored_metrics({"metrics": {}})["log p(x)"] is None
