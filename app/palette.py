"""Colours every page uses for the same thing, so digit 1 is the same colour on the map, in the
lab and in a legend (Tableau 10: distinct for the colour-blind in pairs, readable on a projector)."""

from __future__ import annotations

LABEL_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def label_colour(label: int) -> str:
    """The colour of class `label` (labels past 10 cycle)."""
    return LABEL_COLOURS[int(label) % len(LABEL_COLOURS)]
