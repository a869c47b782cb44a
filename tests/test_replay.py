"""vae_core.replay: the recorder (no effect on training), the map alignment, the file format (size
bound, round trip, every kind of bad file) and `train --replay` end to end on a tiny .npz."""

from __future__ import annotations

import glob
import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import torch

from vae_core import replay as rp
from vae_core.cache import default_cache_dir, default_checkpoint_path, list_checkpoints
from vae_core.checkpoints import read_metadata
from vae_core.cli import main
from vae_core.data import eval_targets
from vae_core.model_card import sha256_file
from vae_core.train import fit


def _fit_with_recorder(cfgs, data, epochs=3):
    mc, tc = cfgs[0], cfgs[1].replace(epochs=epochs)
    rec = rp.ReplayRecorder(eval_targets(data.x_test, tc.binarize), data.y_test, tc.epochs, mc.latent_dim)
    res = fit(mc, tc, data, progress=rec.wrap(None), device="cpu", final_iw_samples=0)
    return rec, res, mc, tc


def test_recording_does_not_change_training(tiny_cfgs, tiny_data):
    rec, with_rec, mc, tc = _fit_with_recorder(tiny_cfgs, tiny_data)
    without = fit(mc, tc, tiny_data, device="cpu", final_iw_samples=0)
    a, b = with_rec.model.state_dict(), without.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in rec.rows] == [1, 2, 3]


def test_round_trip_holds_fits_numbers(tiny_cfgs, tiny_data, tmp_path):
    rec, res, _mc, tc = _fit_with_recorder(tiny_cfgs, tiny_data)
    path = rp.save_replay(str(tmp_path / "m.replay.npz"), rec.arrays({"source": "recorded", "x": "é"}))
    r = rp.load_replay(path)
    assert r.meta == {"source": "recorded", "x": "é"}
    assert r.epochs.tolist() == [1, 2, 3]
    h = res.history
    np.testing.assert_allclose(r.elbo, [e["test_elbo"] for e in h], rtol=1e-6)
    np.testing.assert_allclose(r.recon_nats, [e["test_recon"] for e in h], rtol=1e-6)
    np.testing.assert_allclose(r.kl_per_dim, [e["test_kl_per_dim"] for e in h], rtol=1e-6)
    np.testing.assert_allclose(r.elbo, r.recon_nats - r.kl, atol=1e-4)
    # the final map is the final model's PCA of the test means (an independent SVD here)
    mu = res.model.encode(eval_targets(tiny_data.x_test, tc.binarize))[0].detach().numpy().astype(np.float64)
    c = mu - mu.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    for axis in range(2):
        proj = c @ vt[axis]
        assert abs(abs(np.corrcoef(proj, r.xy[-1, :, axis])[0, 1]) - 1) < 1e-3
    # images: the last epoch's reconstructions are the final model's decoder means, as uint8
    want = res.model.decode_mean(res.model.encode(eval_targets(tiny_data.x_test, tc.binarize)[: rp.N_RECON])[0])
    assert np.abs(r.recon[-1].astype(int) - np.rint(want.detach().numpy() * 255).astype(int)).max() <= 1
    assert r.grid.shape == (3, rp.GRID_SIDE**2, 64) and r.labels.tolist() == [-1] * 32


def test_alignment_removes_a_rotation():
    """An earlier epoch that is the final means rotated and shifted lands on the final map."""
    rng = np.random.default_rng(0)
    final = rng.normal(size=(200, 5)) * [3, 2, 1, 0.5, 0.1]
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    xy, explained = rp.align_and_project(np.stack([final @ q + 7.0, 0.5 * final, final]))
    np.testing.assert_allclose(xy[0], xy[2], atol=1e-9)
    np.testing.assert_allclose(xy[1] - xy[1].mean(0), 0.5 * (xy[2] - xy[2].mean(0)), atol=1e-9)  # no rescaling
    assert explained[0] > explained[1] > 0


@pytest.mark.parametrize("epochs,values,k", [(1000, 784, 16), (100, 3072, 64), (7, 784, 16), (1, 784, 2)])
def test_snapshot_plan_stays_in_the_budget(epochs, values, k):
    ep = rp.snapshot_epochs(epochs, values, k, rp.MAX_POINTS)
    assert ep[0] == 1 and ep[-1] == epochs and ep == sorted(set(ep)) and len(ep) <= rp.MAX_SNAPSHOTS
    raw = len(ep) * ((rp.GRID_SIDE**2 + rp.N_RECON) * values + rp.MAX_POINTS * 4 + k * 4 + 16)
    assert raw + rp.N_RECON * values <= rp.RAW_BUDGET
    if epochs <= 100 and values == 784:
        assert ep == list(range(1, epochs + 1))  # a small run keeps every epoch


def test_huge_images_refused_before_training():
    with pytest.raises(ValueError, match="does not fit"):
        rp.snapshot_epochs(10, 3 * 512 * 512, 16, 100)


def _good(tmp_path, tiny_cfgs, tiny_data) -> dict:
    rec, *_ = _fit_with_recorder(tiny_cfgs, tiny_data, epochs=2)
    return rec.arrays({"source": "recorded"})


def _npz(path, arrays) -> str:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def test_bad_files_give_one_clear_error(tmp_path, tiny_cfgs, tiny_data):
    good = _good(tmp_path, tiny_cfgs, tiny_data)
    whole = rp.save_replay(str(tmp_path / "good.replay.npz"), good)
    with open(whole, "rb") as f:
        data = f.read()
    cases = {"missing": None, "truncated": data[: len(data) // 2], "text": b"hello, not a zip", "empty": b""}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    bad = dict(good, xy=good["xy"].copy())
    bad["xy"][0, 0, 0] = np.nan
    arrays = {
        "nan": bad,
        "no_grid": {k: v for k, v in good.items() if k != "grid"},
        "foreign_format": dict(good, format=np.array(1)),
        "wrong_shape": dict(good, kl=good["kl"][:1]),
        "pickled": dict(good, meta=np.array([{"source": "recorded"}], dtype=object)),
        "meta_not_json": dict(good, meta=np.array("{nope")),
        "epochs_backwards": dict(good, epochs=good["epochs"][::-1].copy()),
    }
    for name, a in arrays.items():
        _npz(tmp_path / name, a)
    buf = io.BytesIO()  # a zip whose directory promises 1 GB: refused before anything is inflated
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("xy.npy", b"\0" * (50 * 2**20))
    (tmp_path / "bomb").write_bytes(buf.getvalue())
    for name in [*cases, *arrays, "bomb"]:
        path = str(tmp_path / name)
        with pytest.raises(rp.ReplayError) as e:
            rp.load_replay(path)
        msg = str(e.value)
        assert msg.startswith(path + ": ") and "\n" not in msg, (name, msg)
    assert rp.load_replay(whole).epochs.tolist() == [1, 2]


def test_a_bad_replay_never_breaks_the_checkpoint_listing(tmp_path):
    ckpt = default_checkpoint_path()
    dst = shutil.copy(ckpt, tmp_path)
    with open(rp.replay_path(dst), "wb") as f:
        f.write(b"PK\x03\x04 garbage")
    rows = list_checkpoints(str(tmp_path))
    assert [r["path"] for r in rows] == [dst] and "error" not in rows[0]


def test_cli_replay_end_to_end(tmp_path, tiny_npz, capsys):
    cache = str(tmp_path / "ckpts")
    args = [
        "train",
        "--dataset",
        tiny_npz,
        "--latent-dim",
        "2",
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--final-iw-samples",
        "5",
        "--device",
        "cpu",
        "--cache-dir",
        cache,
        "--quiet",
    ]
    assert main([*args, "--replay"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = rp.load_replay(rp.replay_path(out["checkpoint"]))
    meta = read_metadata(out["checkpoint"])
    assert r.meta["source"] == "recorded" and r.meta["checkpoint_sha256"] == sha256_file(out["checkpoint"])
    assert r.meta["model_config"] == meta["model_config"] and r.meta["train_config"] == meta["train_config"]
    np.testing.assert_allclose(r.elbo, [h["test_elbo"] for h in meta["history"]], rtol=1e-6)
    assert r.labels.tolist() == (np.arange(128) % 4)[96:].tolist()
    assert main([*args, "--replay"]) == 0  # cached: said so, the replay kept
    assert "no replay was recorded" in capsys.readouterr().err
    assert rp.load_replay(rp.replay_path(out["checkpoint"])).meta == r.meta


DEFAULT_CACHE_DIR = default_cache_dir()  # the shipped checkpoints (no override in tests at import)
SHIPPED = sorted(glob.glob(os.path.join(DEFAULT_CACHE_DIR, "**", "*.replay.npz"), recursive=True))


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_replays_match_their_checkpoints(path):
    ckpt = path[: -len(".replay.npz")] + ".safetensors"
    r, meta = rp.load_replay(path), read_metadata(ckpt)
    assert os.path.getsize(path) <= rp.MAX_BYTES
    assert r.meta["model_config"] == meta["model_config"] and r.meta["train_config"] == meta["train_config"]
    assert r.meta["checkpoint_sha256"] == sha256_file(ckpt)
    assert r.epochs[-1] == meta["train_config"]["epochs"]
    if r.meta["source"] == "recorded":  # the same training: the same per-epoch numbers
        np.testing.assert_allclose(r.elbo, [h["test_elbo"] for h in meta["history"]], rtol=1e-5)


def test_shipped_model_and_lab_beta_10_have_replays():
    names = {os.path.relpath(p, DEFAULT_CACHE_DIR) for p in SHIPPED}
    assert "mnist-5k_mlp_elbo_z16_b788d79a475adf83.replay.npz" in names
    beta10 = [
        n
        for n in names
        if n.startswith("lab" + os.sep)
        and rp.load_replay(os.path.join(DEFAULT_CACHE_DIR, n)).meta["train_config"]["beta"] == 10.0
    ]
    assert len(beta10) == 1
