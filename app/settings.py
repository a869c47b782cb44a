"""Serving settings a teacher sets before `streamlit run app/main.py`, read from the environment.

    VAE_ALLOW_TRAINING=0   hide the Train page (and with it the upload of datasets): a class of
                           100 cannot start 100 training jobs on the server.
    VAE_DATA_ROOTS=/a:/b   folders whose .npz files and image folders the Train page may read
                           (see vae_core.data_access; by default none: registered datasets and
                           browser uploads only).
Read on every call (cheap), so tests and a restarted server see the current value.
"""
from __future__ import annotations

import os

TRAINING_ENV = "VAE_ALLOW_TRAINING"


def training_allowed() -> bool:
    return os.environ.get(TRAINING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
