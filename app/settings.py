"""Serving settings a teacher sets before `streamlit run app/main.py`, read from the environment.

    VAE_ALLOW_TRAINING=0   hide the Train page (and with it the upload of datasets): a class of
                           100 cannot start 100 training jobs on the server.
    VAE_DATA_ROOTS=/a:/b   folders whose .npz files and image folders the Train page may read
                           (see vae_core.data_access; by default none: registered datasets and
                           browser uploads only).
    VAE_DEBUG_HOOKS=1      install the components' measurement hooks (window globals the browser
                           tests and bench/ read); off by default so the hot paths stay clean.
Read on every call (cheap), so tests and a restarted server see the current value.
"""

from __future__ import annotations

import os

TRAINING_ENV = "VAE_ALLOW_TRAINING"
DEBUG_HOOKS_ENV = "VAE_DEBUG_HOOKS"


def training_allowed() -> bool:
    return os.environ.get(TRAINING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def debug_hooks() -> bool:
    """True when the components should expose their measurement hooks to tests and benchmarks."""
    return os.environ.get(DEBUG_HOOKS_ENV, "0").strip().lower() in ("1", "true", "yes", "on")
