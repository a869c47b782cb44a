"""Draw a plotly figure that is already JSON (a dict built once, cached) with st.plotly_chart, as is.

st.plotly_chart turns what it is given into a dict before sending it: a dict is validated by building a
go.Figure from it again (seconds for an animation of 100 frames), a go.Figure is copied by `to_dict`
(numpy arrays to base64 through narwhals: 0.3 s for the same figure). A figure built once, from
plotly's own objects or from plain lists, needs neither on every rerun. `Prebuilt(spec)` is a go.Figure
whose `to_dict` is `spec` itself, so st.plotly_chart serializes the spec unchanged (same element, same
JSON, as tests/test_plotly_spec.py checks).
"""

from __future__ import annotations

import plotly.graph_objects as go


class Prebuilt(go.Figure):
    """A go.Figure standing for a finished plotly JSON spec ({"data", "layout", "frames"?}): read-only."""

    def __init__(self, spec: dict):
        super().__init__()
        self._spec = spec

    def to_dict(self) -> dict:
        return self._spec
