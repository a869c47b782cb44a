"""eval_mode: run a block with a module in eval mode, and leave it in the mode it was in.

Checkpoints load in eval mode once (vae_core.checkpoints) and the app shares each loaded model
between sessions: code that only evaluates must not write to it. eval_mode writes nothing when
the model is already in eval mode, and otherwise restores train mode on the way out, so fit()'s
per-epoch test ELBO leaves the model it is training as it found it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from torch import nn

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """model.eval() for the block, then model.train(True) again if it was training before."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train(True)


def in_eval_mode(fn: F) -> F:
    """Decorator: run fn(model, ...) under eval_mode(model)."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with eval_mode(model):
            return fn(model, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
