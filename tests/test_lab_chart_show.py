"""app.lab.charts.show sends what st.altair_chart would send, from a spec built once per report."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest


def _page() -> None:
    import altair as alt
    import pandas as pd
    import streamlit as st

    from app.lab.charts import show

    class Report:  # a stand-in for a lab report: views are cached per report object
        pass

    report = st.session_state.setdefault("report", Report())
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 2.0], "s": ["a", "a", "b"]})
    built = st.session_state.setdefault("built", [0])

    def build():
        built[0] += 1
        return alt.Chart(df).mark_line().encode(x="x:Q", y="y:Q", color="s:N").properties(title="t")

    st.altair_chart(build(), key="reference")
    show(st, report, "line", build, key="cached")


def test_show_sends_the_altair_charts_spec_and_data_and_builds_it_once():
    at = AppTest.from_function(_page).run()
    assert not at.exception, [e.value for e in at.exception]
    ref, cached = at.get("vega_lite_chart")
    spec = json.loads(cached.proto.spec)
    assert spec.pop("usermeta") == {"embedOptions": {"renderer": "canvas"}}  # drawn on a canvas
    assert spec == json.loads(ref.proto.spec)
    assert [(d.name, d.data.data) for d in cached.proto.datasets] == [(d.name, d.data.data) for d in ref.proto.datasets]
    assert cached.proto.theme == ref.proto.theme
    at.run()
    assert not at.exception
    assert at.session_state["built"][0] == 3  # the reference each run (2) + the cached spec once
