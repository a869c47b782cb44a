"""Progress: the one report every long vae_core job gives its caller.

A job takes `progress: ProgressFn | None` and calls it with a `Progress` as it advances:

    Progress(phase, done, total, message)   done of total units of the phase now running
                                            (fraction = done / total); message is one line
                                            for a person, ready to show as plain text

Phases, in the order a fresh model goes through them (each job reports only its own):
    "data"      fit: the training rows moved to the device (0 of 1, then 1 of 1)
    "train"     fit: optimiser steps over all epochs (about every `step_every` seconds, and
                at the end of every epoch, when `history` has grown by that epoch's entry)
    "evaluate"  fit: the final test ELBO and importance-sampled log p(x) (0 of 1, then 1 of 1)
    "encode"    projection_cache.build_cache: the test set's encoder means (0 of 1, 1 of 1)
    "map"       umap_subsample: UMAP layout epochs
    "place"     umap_subsample: points placed on the UMAP map by the kNN transform

Raising from the callback cancels the job (fit relies on it: the Train page's Cancel button).
Training reports also carry the epoch, the last batch loss and the finished epochs' history for
live curves, and at each epoch's end the model itself (`model`); `seconds` since the phase began gives an ETA. The UMAP child process prints its
reports as log lines (vae_core.umap_job: to_line / from_line) for the app to show.
Numpy-free and torch-free: every module may import it.
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("data", "train", "evaluate", "encode", "map", "place")


@dataclass(frozen=True)
class Progress:
    phase: str  # one of PHASES: what runs now
    done: int  # units of this phase finished
    total: int  # units in this phase (>= 1)
    message: str  # one line for a person, e.g. "epoch 3 of 20 · batch loss 101.2"
    seconds: float = 0.0  # since this phase began
    epoch: int = 0  # train: the 1-based epoch in progress (or just finished)
    epochs: int = 0  # train: epochs in the run
    loss: float = math.nan  # train: the last batch's loss (the global batch's mean)
    history: tuple = ()  # train: the epochs finished so far, one dict each, the newest last
    model: object = None  # train, at each epoch's end only: the model being trained, for recorders
    # (vae_core.replay) to read under no_grad; never modified by them

    @property
    def fraction(self) -> float:
        """done / total, in [0, 1]."""
        return min(1.0, max(0.0, self.done / self.total)) if self.total > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left in this phase at its mean rate so far; None before the first unit."""
        if self.done <= 0 or self.seconds <= 0:
            return None
        return self.seconds * max(0, self.total - self.done) / self.done


ProgressFn = Callable[[Progress], None]
