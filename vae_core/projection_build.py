"""Computing a checkpoint's map cache: the encoder means of its test points (+ their UMAP), written
as `<ckpt>.proj.npz` (vae_core.projection_cache).

save_map_cache is the one post-training hook: the command line (`train`) and the app's Train page
both pass it to train_or_load's on_trained, so a fresh model's latent map opens at once. Only a
speed-up: the model is cached already, so a failure there is a warning for the caller to show,
never an error. Torch and umap-learn are imported by the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .projection import MAX_POINTS, encode_means, point_order
from .projection_cache import ProjectionCache, file_sha, write_cache

if TYPE_CHECKING:
    import torch

    from .checkpoints import Checkpoint
    from .dataset import Dataset
    from .model import VAE
    from .progress import ProgressFn


def build_cache(
    checkpoint_path: str,
    model: VAE,
    x_test: torch.Tensor,
    y_test: torch.Tensor | None,
    with_umap: bool,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> ProjectionCache:
    """Means of up to MAX_POINTS test examples (+ UMAP if asked: vae_core.umap_subsample.fit_umap_large,
    subsampled above its FIT_POINTS), written beside the checkpoint. progress(Progress) reports the
    phases "encode", then "map" and "place" (vae_core.progress). Raises ValueError if the means are
    not finite, StorageError if the file cannot be written."""
    import torch

    from .progress import Progress
    from .umap_subsample import fit_umap_large

    report = progress or (lambda p: None)
    index = point_order(len(x_test), MAX_POINTS, seed)
    what = f"{len(index):,} test examples for the latent map"
    report(Progress("encode", 0, 1, f"encoding {what}"))
    means = encode_means(model, x_test[torch.from_numpy(index)])
    report(Progress("encode", 1, 1, f"encoded {what}"))
    labels = y_test[torch.from_numpy(index)].numpy() if y_test is not None else np.full(len(index), -1)
    with_umap = with_umap and means.shape[1] > 2 and len(means) > 2
    emb = fit_umap_large(means, seed, progress=progress) if with_umap else None
    cache = ProjectionCache(file_sha(checkpoint_path), index, labels, means, emb, n_test=len(x_test))
    write_cache(checkpoint_path, cache)
    return cache


def save_map_cache(
    ckpt: Checkpoint, data: Dataset, *, with_umap: bool = False, progress: ProgressFn | None = None
) -> str | None:
    """After training: build_cache for the fresh checkpoint on the test set it was trained with.
    None when saved; else one line saying why not (a read-only folder, a full disk, means that are
    not finite, ...) for the caller to warn with. A cancel raised from progress still propagates."""
    from .data import eval_targets

    try:
        x_test = eval_targets(data.x_test, ckpt.train_config.binarize)
        build_cache(ckpt.path, ckpt.model, x_test, data.y_test, with_umap=with_umap, progress=progress)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        return (
            f"the model is cached, but its latent map cache was not saved ({e}); "
            f"the map will be computed when it is first shown"
        )
    return None
