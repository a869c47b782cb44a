"""vae_core: a Gaussian VAE engine with named ELBO terms, importance-sampled log p(x) and a cache."""
from .config import ConfigError, ModelConfig, TrainConfig
from .model import VAE, VAEOutput
from .losses import ELBOTerms, elbo_terms, kl_diag_gaussian, mmd
from .estimators import evaluate, iwae_bound, log_importance_weights, log_px
from .data import Dataset, DatasetError, load_dataset
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .train import FitResult, Progress, TrainingDivergedError, fit
from .cache import default_checkpoint_path, list_checkpoints, train_or_load

__all__ = [n for n in dir() if not n.startswith("_")]
