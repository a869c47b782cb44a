"""The explorer's first paint needs no torch: the page table, the sidebar picker, checkpoint headers and
the projection cache load without it (torch alone costs 2-3 s on this machine). And the torch-free map
data equals what the model-backed path computes."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vae_core
from vae_core import cache
from vae_core.checkpoints import load_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = cache.default_checkpoint_path(os.path.join(REPO, "checkpoints"))

FIRST_PAINT = f"""
import json, sys
from app.views import PAGES
from app.lab import PAGES as LAB_PAGES
from app.common import checkpoint_label, checkpoint_metadata, pick_checkpoint_path
from app.views.latent_data import map_view_from_cache
from vae_core import CheckpointError, projection_cache
from vae_core.cache import default_checkpoint_path, list_checkpoints
from vae_core.checkpoints import read_metadata
path = {SHIPPED!r}
rows = list_checkpoints()
assert default_checkpoint_path() == path
labels = [checkpoint_label(r) for r in rows]
assert pick_checkpoint_path() == path  # bare mode: the selectbox returns its initial choice
assert checkpoint_metadata(path) == read_metadata(path)
cached = projection_cache.read_cache(path)
view = map_view_from_cache(path)
print(json.dumps({{"torch": "torch" in sys.modules, "rows": len(rows), "umap": cached.umap is not None,
                   "view": view is not None, "pages": len(PAGES) + len(LAB_PAGES)}}))
"""


def test_first_paint_imports_and_calls_leave_torch_unloaded():
    """In a fresh process: a top-level `import torch` added anywhere on this path fails here."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": REPO, "VAE_CHECKPOINT_DIR": os.path.dirname(SHIPPED)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"torch": False, "rows": got["rows"], "umap": True, "view": True, "pages": 15}
    assert got["rows"] >= 1


def test_page_table_names_importable_modules_with_render():
    from app.lab import PAGES as LAB_PAGES
    from app.views import PAGES

    rows = PAGES + LAB_PAGES
    assert PAGES[0][:2] == ("explorer", "Latent explorer")  # the default page
    assert len({slug for slug, *_ in rows}) == len(rows)
    for _slug, _title, _icon, module in rows:
        assert callable(importlib.import_module(module).render), module


def test_lazy_package_exports_resolve():
    """`from vae_core import fit` and the rest of the README's API still work."""
    for name in vae_core.__all__:
        assert getattr(vae_core, name).__module__.startswith("vae_core."), name
    assert set(vae_core.__all__) <= set(dir(vae_core))
    assert vae_core.losses is importlib.import_module("vae_core.losses")  # submodules too
    with pytest.raises(AttributeError):
        vae_core.no_such_name  # noqa: B018


def test_map_view_from_cache_equals_the_model_backed_view():
    from app.views.latent_data import map_view_from_cache, model_view

    fast, slow = map_view_from_cache(SHIPPED), model_view(load_checkpoint(SHIPPED))
    assert fast is not None
    for name in ("index", "labels", "means"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    np.testing.assert_array_equal(fast.pca.components, slow.pca.components)
    np.testing.assert_array_equal(fast.pca.center, slow.pca.center)
    assert (fast.kl_per_dim, fast.collapsed, fast.n_test) == (slow.kl_per_dim, slow.collapsed, slow.n_test)


def test_map_view_from_cache_is_none_without_a_usable_cache(tmp_path):
    import shutil

    from app.views.latent_data import map_view_from_cache
    from vae_core.projection_cache import cache_path_for

    path = str(tmp_path / os.path.basename(SHIPPED))
    shutil.copy(SHIPPED, path)
    assert map_view_from_cache(path) is None  # no cache beside it
    shutil.copy(cache_path_for(SHIPPED), cache_path_for(path))
    assert map_view_from_cache(path) is not None
    with open(path, "r+b") as f:  # other weights under the same name: the cache is stale
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x3f")
    assert map_view_from_cache(path) is None
