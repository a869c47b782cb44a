"""app.plotly_spec.Prebuilt: st.plotly_chart sends a prebuilt spec exactly as it sends the go.Figure it came
from, and never validates or copies it again."""

from __future__ import annotations

from unittest import mock

import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from app.plotly_spec import Prebuilt


def _script():
    import numpy as np
    import plotly.graph_objects as go
    import streamlit as st

    from app.plotly_spec import Prebuilt

    fig = go.Figure(go.Scatter(x=np.arange(5.0), y=np.arange(5.0) ** 2, mode="markers", name="<b>x</b>"))
    fig.update_layout(height=321, title="squares")
    fig.frames = [go.Frame(data=[go.Scatter(y=np.arange(5.0) * k)], name=str(k)) for k in range(3)]
    st.plotly_chart(fig, key="plain")
    st.plotly_chart(Prebuilt(fig.to_dict()), key="prebuilt")


def test_prebuilt_sends_the_same_element_as_the_figure():
    at = AppTest.from_function(_script, default_timeout=600).run()
    assert not at.exception
    plain, prebuilt = (c.proto for c in at.get("plotly_chart"))
    assert prebuilt.spec == plain.spec and '"frames"' in plain.spec
    assert prebuilt.config == plain.config and prebuilt.theme == plain.theme


def test_prebuilt_is_neither_copied_nor_validated():
    spec = {"data": [{"type": "bar", "y": [1, 2]}], "layout": {"height": 200}}
    with mock.patch.object(go.Figure, "__init__", wraps=go.Figure.__init__, autospec=True) as init:
        fig = Prebuilt(spec)
        import plotly.tools

        assert plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True) is spec
    assert init.call_count == 1  # Prebuilt's own (empty) figure only: the spec is not rebuilt as a go.Figure
