"""vae_core: a Gaussian VAE engine with named ELBO terms, importance-sampled log p(x) and a cache.

Exports load lazily (PEP 562): `import vae_core.projection` or `vae_core.cache` does not import
torch through this package, so the app can draw its first page before torch is loaded (~2-3 s).
`from vae_core import fit` imports vae_core.train (and torch) when the name is first asked for.
"""

from importlib import import_module
from importlib.util import find_spec

_EXPORTS = {  # name -> submodule that defines it
    "ConfigError": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "VAE": "model",
    "VAEOutput": "model",
    "ELBOTerms": "losses",
    "elbo_terms": "losses",
    "kl_diag_gaussian": "losses",
    "mmd": "losses",
    "evaluate": "estimators",
    "iwae_bound": "estimators",
    "log_importance_weights": "estimators",
    "log_px": "estimators",
    "Dataset": "dataset",
    "DatasetError": "data_access",
    "load_dataset": "data",
    "Checkpoint": "checkpoints",
    "CheckpointError": "checkpoints",
    "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "FitResult": "train",
    "TrainingDivergedError": "train",
    "fit": "train",
    "Progress": "progress",
    "default_checkpoint_path": "cache",
    "list_checkpoints": "cache",
    "train_or_load": "cache",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("_") and find_spec(f"{__name__}.{name}") is not None:
        value = import_module(f".{name}", __name__)  # `vae_core.losses` after a bare `import vae_core`
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
