"""The shipped model's lab pages open from what is committed: every lab report and every chart spec
(app/lab/spec_store.py) is on disk, so a fresh clone's first visit of a lab page computes and builds
nothing. A failure here names the pages whose files are stale (their code changed): run
`python tests/harness/lab_views.py` and commit what it writes."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from tests.harness.lab_views import REPO, run_lab_pages
from vae_core.cache import default_checkpoint_path


def test_every_lab_chart_of_the_shipped_model_is_committed(tmp_path, monkeypatch):
    shipped = default_checkpoint_path()
    if not os.path.exists(shipped):
        pytest.skip("the shipped default checkpoint is not present")
    folder = tmp_path / "checkpoints"
    shutil.copytree(os.path.join(REPO, "checkpoints"), folder, ignore=shutil.ignore_patterns("*.lock", ".tmp-*"))
    before = set(glob.glob(str(folder / "**" / "*"), recursive=True))
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    built = run_lab_pages(str(folder))
    written = sorted(
        os.path.relpath(f, folder) for f in set(glob.glob(str(folder / "**" / "*"), recursive=True)) - before
    )
    assert all(n == 0 for n in built.values()) and not written, (
        f"charts built per page {built}, files written {written}: run `python tests/harness/lab_views.py` "
        "and commit the files it writes (git add -f)"
    )
