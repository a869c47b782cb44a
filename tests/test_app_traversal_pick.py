"""Traversal page (issue 12 item 11): interpolation endpoints picked by clicking map points, marked
"start" and "end" on the map; GIF exports of the traversal and the interpolation.

AppTest has no plotly click: a click is sent as the widget state the browser would send (the plotly
selection event as JSON under the chart's widget id), through AppTest's own run with widget states."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import torch
from PIL import Image, ImageSequence

from tests import test_app as _app_tests
from tests import test_app_arithmetic as _arith
from tests.test_app import _app, _ckpt_path, _no_exception, _targets_and_model
from tests.test_app_arithmetic import _download
from vae_core.images import to_display
from vae_core.latent import decode, encode_mean, lerp, slerp

# fixtures of other test modules, bound here so pytest finds them by name
cache_dir = _app_tests.cache_dir
use_cache = _app_tests.use_cache
media = _arith.media


def _values(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)[, "shape"]}."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


def _traces(at) -> dict:
    return {t.get("name"): t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}


def _map_xy_of(at, test_index: int) -> np.ndarray:
    """Where the map draws test example `test_index` (its point carries customdata [index, label])."""
    for t in _traces(at).values():
        if "customdata" in t:
            cd = _values(t["customdata"])
            hits = np.flatnonzero(cd[:, 0] == test_index)
            if len(hits):
                return np.array([_values(t["x"])[hits[0]], _values(t["y"])[hits[0]]], np.float64)
    raise AssertionError(f"test #{test_index} is not on the map")


def _click(at, test_index: int, label: int) -> None:
    """What the browser sends when a map point is clicked: the chart's selection, as JSON (Chromium
    sends the point's row of the int32 customdata as an object {"0": index, "1": label})."""
    chart = at.get("plotly_chart")[0].proto.id
    states = at._tree.get_widget_states()
    w = states.widgets.add()
    w.id = chart
    point = {"curve_number": 0, "point_index": 0, "x": 0.0, "y": 0.0, "customdata": {"0": test_index, "1": label}}
    w.string_value = json.dumps({"selection": {"points": [point], "point_indices": [0], "box": [], "lasso": []}})
    at._run(states)


def _map_points(at) -> list[tuple[int, int]]:
    """(test index, label) of the map points, in trace order."""
    out = []
    for t in _traces(at).values():
        if "customdata" in t:
            out += [(int(i), int(c)) for i, c in _values(t["customdata"])]
    return out


def test_a_selection_event_names_the_clicked_test_example():
    from app.views.traversal import picked_test_index

    def event(*points):
        return {"selection": {"points": list(points), "point_indices": [], "box": [], "lasso": []}}

    assert picked_test_index(event({"x": 1.0, "customdata": {"0": 494, "1": 3}})) == 494  # as Chromium sends it
    assert picked_test_index(event({"x": 1.0, "customdata": [12, 3]})) == 12
    assert picked_test_index(event({"x": 1.0}, {"customdata": [7, 1]})) == 7  # a path point first: skipped
    assert picked_test_index(event({"x": 1.0})) is None and picked_test_index(event()) is None
    assert picked_test_index(None) is None and picked_test_index({"selection": {}}) is None
    assert picked_test_index(event({"customdata": {"a": 1}})) is None


def test_clicking_map_points_sets_the_start_then_the_end(use_cache):
    path = _ckpt_path(use_cache, 3)
    at = _app("traversal", path)
    _no_exception(at)
    a0, b0 = at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value
    assert at.radio(key="traversal_next").value == "start"
    points = [p for p in _map_points(at) if p[0] not in (a0, b0)]
    first, second = points[5], points[17]
    _click(at, *first)
    _no_exception(at)
    assert at.number_input(key="traversal_from").value == first[0]
    assert at.number_input(key="traversal_to").value == b0  # the end stays
    assert at.radio(key="traversal_next").value == "end"
    _click(at, *second)
    assert at.number_input(key="traversal_to").value == second[0]
    assert at.number_input(key="traversal_from").value == first[0]
    assert at.radio(key="traversal_next").value == "start"
    # the markers sit on the clicked points, and the paths run from one to the other
    tr = _traces(at)
    for name, idx in (("start", first[0]), ("end", second[0])):
        assert tr[name]["text"] == [name] and "text" in tr[name]["mode"]
        xy = np.array([_values(tr[name]["x"])[0], _values(tr[name]["y"])[0]])
        np.testing.assert_allclose(xy, _map_xy_of(at, idx), atol=1e-4)
    line = np.stack([_values(tr["linear path"]["x"]), _values(tr["linear path"]["y"])], 1)
    np.testing.assert_allclose(line[0], _map_xy_of(at, first[0]), atol=1e-4)
    np.testing.assert_allclose(line[-1], _map_xy_of(at, second[0]), atol=1e-4)
    # a typed number still works, and the next click goes to the radio's choice
    at.number_input(key="traversal_to").set_value(b0).run()
    at.radio(key="traversal_next").set_value("end").run()
    _click(at, *points[2])
    assert at.number_input(key="traversal_to").value == points[2][0]
    assert at.number_input(key="traversal_from").value == first[0]


def _gif_frames(data: bytes) -> tuple[tuple[int, int], list[np.ndarray]]:
    img = Image.open(io.BytesIO(data))
    return img.size, [np.asarray(f.convert("L"), np.float32) / 255 for f in ImageSequence.Iterator(img)]


def test_gif_exports_have_one_frame_per_step(use_cache, media):
    path = _ckpt_path(use_cache, 2)  # k = 2: two traversal rows
    at = _app("traversal", path)
    at.slider(key="traversal_steps").set_value(7)
    at.slider(key="traversal_isteps").set_value(5).run()
    _no_exception(at)
    x, model = _targets_and_model(path)
    shape = (1, 8, 8)  # digits

    # traversal from z = 0: frame j shows both dims at value v_j (rows in KL order, side by side)
    size, frames = _gif_frames(_download(at, media, "traversal_dl_gif"))
    assert len(frames) == 7 and size == ((2 * 8 + 1) * 4, 8 * 4)
    values = torch.linspace(-3, 3, 7)
    first_row_dim = int(at.markdown[0].value.split("**z")[1].split("**")[0]) - 1  # "**z2** · KL ..."
    z = torch.zeros(7, 2)
    z[:, first_row_dim] = values
    want = to_display(decode(model, z), shape)
    for f, w in zip(frames, want):
        np.testing.assert_allclose(f[::4, :32:4], w, atol=1 / 255 + 1e-3)
    assert np.abs(frames[0] - frames[-1]).max() > 0.02

    # interpolation: frame t is lerp (left) and slerp (right) at t
    a, b = at.number_input(key="traversal_from").value, at.number_input(key="traversal_to").value
    mu = encode_mean(model, x[[a, b]])
    t = torch.linspace(0, 1, 5)
    size, frames = _gif_frames(_download(at, media, "traversal_dl_igif"))
    assert len(frames) == 5 and size == ((2 * 8 + 1) * 4, 8 * 4)
    lin, sl = (
        to_display(decode(model, lerp(mu[0], mu[1], t)), shape),
        to_display(decode(model, slerp(mu[0], mu[1], t)), shape),
    )
    for f, wl, ws in zip(frames, lin, sl):
        np.testing.assert_allclose(f[::4, :32:4], wl, atol=1 / 255 + 1e-3)
        np.testing.assert_allclose(f[::4, 36::4], ws, atol=1 / 255 + 1e-3)
