"""The lab's charts in Vega-Lite: lines with error bars and labelled rules, grouped bars,
label-coloured maps with equal aspect; and `show`, which draws one from its report's cached spec.

Not Plotly: a tab that shows one Plotly chart first fetches and compiles Streamlit's 4.6 MB Plotly
chunk. In headless Chromium on the 2-core machine (load ~5, a new browser context each time) a page
with only a title completed in 1.37 s, with one Plotly chart 2.60 s, with one Vega-Lite chart (a ~1 MB
chunk) 1.73 s, with one image 1.38 s. Hover tooltips stay.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from app import palette
from app.lab.report_store import view
from app.lab.spec_store import stored_spec
from app.palette import label_colour

# colours of a chart's series (models, β values) in order: the category10 palette the lab's Plotly
# charts used, so lines and bars of the same series match across a page's charts
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def vega_lite(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec st.altair_chart sends for `chart`, its tables as Arrow IPC bytes (which
    st.vega_lite_chart passes on as they are). Altair's to_dict validates the whole spec against the
    JSON schema on every call: 0.1-0.2 s a chart, 95% of lab 2's script time, each rerun.

    Drawn on a canvas: with Vega's default SVG every point of a map is a DOM element with its own
    attributes, which the browser lays out and styles (Streamlit itself switches to canvas only past
    2,000 points a layer; lab 5's maps have two layers of 1,000)."""
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec  # Streamlit's own converter

    spec = _convert_altair_to_vega_lite_spec(chart)
    meta = spec.setdefault("usermeta", {})
    meta["embedOptions"] = {**meta.get("embedOptions", {}), "renderer": "canvas"}
    return spec


def show(where, report, name: str, build, key: str, **options) -> None:
    """Draw the chart build() makes from `report` in `where` (st or a column), with st.vega_lite_chart's
    `options` (width): its spec is built once per report and `name` (report_store.view, shared by
    every session), so a rerun only sends it, and kept on disk beside the report (spec_store), so a
    restarted server reads it instead of building it again."""
    code = [build.__code__.co_filename, __file__, palette.__file__]  # the page's drawing code and the helpers'
    spec = view(report, name + " (Vega-Lite)", lambda: stored_spec(report, name, lambda: vega_lite(build()), code))
    spec = {**spec, "datasets": dict(spec["datasets"])}  # a copy: st may edit the spec it is given
    where.vega_lite_chart(spec, key=key, **options)


@dataclass(frozen=True)
class Line:
    """One series of a line_chart: y over x, with optional error bars (y ± err)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str = "#1f77b4"
    err: np.ndarray | None = None  # half-length of the error bar at each point
    points: bool = True  # a marker at each point
    line: bool = True  # points joined
    dash: bool = False
    width: float = 2.5
    opacity: float = 1.0
    legend: bool = True  # False: a thin helper line (a repeat, a reference) without legend entry or tooltip


@dataclass(frozen=True)
class Rule:
    """A horizontal reference line at y, labelled at the right end."""

    y: float
    label: str
    colour: str = "grey"
    dash: bool = True


def heading(title: str, subtitle: str = "", width: int = 28) -> alt.TitleParams:
    """A chart title wrapped onto lines of at most `width` characters: Vega cuts a long title off at
    the chart's edge, and a half-width chart at 1024 px is 260-350 px wide."""
    return alt.TitleParams(textwrap.wrap(title, width) or [""], subtitle=textwrap.wrap(subtitle, 40) or [])


def line_chart(
    lines: list[Line],
    title: str,
    x_title: str,
    y_title: str,
    log_x: bool = False,
    log_y: bool = False,
    rules: tuple[Rule, ...] = (),
    height: int = 380,
    subtitle: str = "",
) -> alt.LayerChart:
    """Lines, error bars and labelled horizontal rules as one Vega-Lite chart; the legend (below the
    chart, so a half-width chart keeps its plot width) lists the lines with legend=True."""
    xs = alt.Scale(type="log") if log_x else alt.Scale(zero=False)
    ys = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    named = [ln for ln in lines if ln.legend]
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=[ln.name for ln in named], range=[ln.colour for ln in named]),
        legend=alt.Legend(orient="bottom", title=None, direction="vertical", labelLimit=400),
    )
    layers = []
    for ln in lines:
        df = pd.DataFrame({"x": np.asarray(ln.x, float), "y": np.asarray(ln.y, float), "series": ln.name})
        enc = {
            "x": alt.X("x:Q", scale=xs, title=x_title),
            "y": alt.Y("y:Q", scale=ys, title=y_title),
        }
        style = {"opacity": ln.opacity, "strokeWidth": ln.width}
        if ln.dash:
            style["strokeDash"] = [4, 3]
        if ln.legend:
            enc["color"] = colour
            enc["tooltip"] = [
                alt.Tooltip("series:N", title=" "),
                alt.Tooltip("x:Q", title=x_title),
                alt.Tooltip("y:Q", title=y_title, format=".4g"),
            ]
        else:
            style["color"] = ln.colour
        if ln.err is not None:
            df["lo"], df["hi"] = df["y"] - np.asarray(ln.err, float), df["y"] + np.asarray(ln.err, float)
            err_style = {"color": ln.colour, "opacity": ln.opacity}
            layers.append(alt.Chart(df).mark_rule(**err_style).encode(x=enc["x"], y=alt.Y("lo:Q", scale=ys), y2="hi:Q"))
        if ln.line:
            layers.append(alt.Chart(df).mark_line(point=ln.points, **style).encode(**enc))
        else:
            layers.append(alt.Chart(df).mark_point(filled=True, size=40, **style).encode(**enc))
    xmax = max(float(np.max(ln.x)) for ln in lines)
    for r in rules:
        df = pd.DataFrame({"y": [r.y], "x": [xmax], "label": [r.label]})
        layers.append(alt.Chart(df).mark_rule(color=r.colour, strokeDash=[6, 4] if r.dash else [1, 0]).encode(y="y:Q"))
        if r.label:
            text = alt.Chart(df).mark_text(align="right", baseline="bottom", dy=-3, color=r.colour, fontSize=12)
            layers.append(text.encode(x=alt.X("x:Q", scale=xs), y="y:Q", text="label:N"))
    return alt.layer(*layers).properties(title=heading(title, subtitle), height=height)


def bar_chart(
    groups: list[str],
    values: list,
    categories: list[str],
    title: str,
    x_title: str,
    log: bool = False,
    threshold: tuple[float, str] | None = None,
    height: int = 340,
) -> alt.LayerChart:
    """Grouped bars: values[g][c] for group g (a colour, in the legend) at category c (the x axis).
    threshold = (y, name): a dashed rule across the plot, named in the subtitle, clear of the bars."""
    df = pd.DataFrame(
        [
            {"group": g, "category": c, "value": float(v)}
            for g, row in zip(groups, values)
            for c, v in zip(categories, row)
        ]
    )
    y = alt.Y("value:Q", title=None, scale=alt.Scale(type="log") if log else alt.Scale())
    enc = {}
    if log:  # a log axis has no 0: bars rise from the decade below the smallest positive value
        positive = df.value[df.value > 0]
        floor = 10.0 ** np.floor(np.log10(positive.min())) if len(positive) else 1e-6
        df["value"] = df.value.where(df.value > 0)
        enc["y2"] = alt.datum(float(floor))
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            **enc,
            x=alt.X("category:N", sort=categories, title=x_title, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("group:N", sort=groups),
            y=y,
            color=alt.Color(
                "group:N",
                scale=alt.Scale(domain=groups, range=list(SERIES_COLOURS[: len(groups)])),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=["group:N", "category:N", alt.Tooltip("value:Q", format=".4g")],
        )
    )
    layers = [bars]
    subtitle = ""
    if threshold is not None:
        rule = pd.DataFrame({"value": [threshold[0]], "name": [threshold[1]]})
        layers.append(alt.Chart(rule).mark_rule(color="black", strokeDash=[6, 4]).encode(y="value:Q"))
        subtitle = f"dashed: {threshold[1]}"
    return alt.layer(*layers).properties(title=heading(title, subtitle), height=height)


def square_domains(*xys: np.ndarray, pad: float = 0.05) -> tuple[list[float], list[float]]:
    """x and y domains of equal span around the points (n, 2), so a square chart has equal aspect."""
    xy = np.concatenate([np.asarray(a, float).reshape(-1, 2) for a in xys])
    lo, hi = xy.min(0), xy.max(0)
    mid, half = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + pad)
    return [float(mid[0] - half), float(mid[0] + half)], [float(mid[1] - half), float(mid[1] + half)]


def label_points(xy: np.ndarray, y, name: str = "μ(x), label {}") -> tuple[pd.DataFrame, alt.Color]:
    """(frame with x, y, series, colour encoding): points coloured by label with app.palette's colours,
    one legend entry per label; y None -> one grey series."""
    if y is None:
        series, colours = np.full(len(xy), "test codes μ(x)", dtype=object), {"test codes μ(x)": "#888888"}
    else:
        labels = np.asarray(y).astype(int)
        colours = {name.format(k): label_colour(k) for k in sorted(set(labels.tolist()))}
        series = np.array([name.format(v) for v in labels], dtype=object)
    df = pd.DataFrame({"x": np.asarray(xy[:, 0], float), "y": np.asarray(xy[:, 1], float), "series": series})
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=list(colours), range=list(colours.values())),
        legend=alt.Legend(title=None, labelFontSize=10, orient="bottom", columns=3),
    )
    return df, colour
