"""The latent map's point machinery (app/components/latent_map/points.mjs, run by node) against
numpy: grid picking against a brute-force nearest search, the density image against
np.histogram2d, value colours against matplotlib's viridis."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

POINTS_JS = os.path.join(os.path.dirname(__file__), "..", "app", "components", "latent_map", "points.mjs")
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the map's JS")

# Reads {xy, t, queries, hit, hidden, box, w, h, values, range, labels, classes}, prints what points.mjs says.
_RUNNER = """
import { buildGrid, nearest, neighbours, densityImage, pointColours, countInView } from %s;
let text = "";
for await (const chunk of process.stdin) text += chunk;
const a = JSON.parse(text), xy = Float32Array.from(a.xy), n = xy.length / 2;
const colours = pointColours(n, Int16Array.from(a.labels), a.classes, new Set(a.hidden),
                             a.range ? { mode: "value", range: a.range } : { mode: "label" }, Float32Array.from(a.values));
const visible = (i) => colours[4 * i + 3] !== 0;
const grid = buildGrid(xy, n, a.perCell);
const { img, max } = densityImage(xy, n, a.t, a.box, a.w, a.h, colours);
process.stdout.write(JSON.stringify({
  picked: a.queries.map(([px, py]) => nearest(grid, xy, a.t, px, py, a.hit, visible)),
  near: neighbours(grid, xy, 0, 10, visible),
  alpha: Array.from(img.filter((_, j) => j %% 4 === 3)), max,
  colours: Array.from(colours),
  inView: countInView(xy, n, a.view, colours),
}));
"""  # noqa: E501


def run(**a) -> dict:
    src = _RUNNER % json.dumps("file://" + os.path.abspath(POINTS_JS))
    a = {"perCell": 4, "hidden": [], "range": None, **a}
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src], capture_output=True, text=True, input=json.dumps(a), timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def scene(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    xy = np.concatenate([rng.normal(0, 1, (n // 2, 2)), rng.uniform(-4, 4, (n - n // 2, 2))]).astype(np.float32)
    labels = rng.integers(0, 3, n)
    classes = [{"label": i, "name": str(i), "color": c} for i, c in enumerate(["#ff0000", "#00ff00", "#0000ff"])]
    t = {"ax": 90.0, "bx": 400.0, "ay": -70.0, "by": 300.0}  # data -> CSS px, y up
    return xy, labels, classes, t


def screen(xy, t):
    return np.stack([t["ax"] * xy[:, 0] + t["bx"], t["ay"] * xy[:, 1] + t["by"]], 1)


def brute_nearest(sxy, q, hit, ok):
    d = ((sxy - q) ** 2).sum(1)
    d[~ok] = np.inf
    i = int(np.argmin(d))  # argmin: the lowest index among ties, as points.mjs
    return i if d[i] <= hit**2 else None


@pytest.mark.parametrize("per_cell", [1, 4, 50])
def test_grid_picking_finds_the_nearest_visible_point_as_a_brute_force_search(per_cell):
    xy, labels, classes, t = scene()
    rng = np.random.default_rng(1)
    sxy = screen(xy.astype(np.float64), t)
    queries = np.concatenate([sxy[:40] + rng.normal(0, 3, (40, 2)), rng.uniform(0, 800, (60, 2))])
    hidden = [2]
    out = run(
        xy=xy.ravel().tolist(),
        labels=labels.tolist(),
        classes=classes,
        t=t,
        queries=queries.tolist(),
        hit=9,
        hidden=hidden,
        values=[0] * len(xy),
        box={"x": 0, "y": 0, "w": 800, "h": 600},
        w=40,
        h=30,
        view={"x0": -1, "x1": 1, "y0": -1, "y1": 1},
        perCell=per_cell,
    )
    ok = labels != 2
    want = [brute_nearest(sxy, q, 9, ok) for q in queries]
    assert out["picked"] == want
    assert sum(w is not None for w in want) > 30 and sum(w is None for w in want) > 5  # both cases exercised
    # neighbours of point 0: itself first, then the nearest visible points by distance
    d = ((xy - xy[0]) ** 2).sum(1)
    d[~ok] = np.inf
    assert out["near"][0] == 0 or not ok[0]
    np.testing.assert_allclose(sorted(d[out["near"]]), np.sort(d)[:10], rtol=1e-6)
    inside = (np.abs(xy) <= 1).all(1) & ok
    assert out["inView"] == int(inside.sum())


def test_density_image_counts_match_a_2d_histogram():
    xy, labels, classes, t = scene(5000, seed=2)
    box, w, h = {"x": 40, "y": 20, "w": 700, "h": 500}, 35, 25
    out = run(
        xy=xy.ravel().tolist(),
        labels=labels.tolist(),
        classes=classes,
        t=t,
        queries=[],
        hit=9,
        values=[0] * len(xy),
        box=box,
        w=w,
        h=h,
        view={"x0": 0, "x1": 1, "y0": 0, "y1": 1},
    )
    sxy = screen(xy.astype(np.float64), t)
    gx, gy = np.floor((sxy[:, 0] - box["x"]) * w / box["w"]), np.floor((sxy[:, 1] - box["y"]) * h / box["h"])
    keep = (gx >= 0) & (gx < w) & (gy >= 0) & (gy < h)
    counts = np.zeros((h, w))
    np.add.at(counts, (gy[keep].astype(int), gx[keep].astype(int)), 1)
    assert out["max"] == counts.max()
    np.testing.assert_array_equal(np.array(out["alpha"]).reshape(h, w) > 0, counts > 0)  # drawn where counted


def test_value_colours_follow_viridis_and_hidden_labels_are_transparent():
    mpl = pytest.importorskip("matplotlib")
    xy, labels, classes, t = scene(200, seed=3)
    values = np.linspace(-2, 5, len(xy))
    out = run(
        xy=xy.ravel().tolist(),
        labels=labels.tolist(),
        classes=classes,
        t=t,
        queries=[],
        hit=9,
        hidden=[1],
        values=values.tolist(),
        range=[-1.0, 4.0],
        box={"x": 0, "y": 0, "w": 10, "h": 10},
        w=2,
        h=2,
        view={"x0": 0, "x1": 1, "y0": 0, "y1": 1},
    )
    rgba = np.array(out["colours"]).reshape(-1, 4)
    want = np.array(mpl.colormaps["viridis"](np.clip((values + 1) / 5, 0, 1)))[:, :3] * 255
    assert np.abs(rgba[:, :3] - want).max() <= 6  # 17 stops, linear between them
    assert (rgba[labels == 1, 3] == 0).all() and (rgba[labels != 1, 3] > 0).all()
    by_label = run(
        xy=xy.ravel().tolist(),
        labels=labels.tolist(),
        classes=classes,
        t=t,
        queries=[],
        hit=9,
        values=values.tolist(),
        box={"x": 0, "y": 0, "w": 10, "h": 10},
        w=2,
        h=2,
        view={"x0": 0, "x1": 1, "y0": 0, "y1": 1},
    )
    rgb = np.array(by_label["colours"]).reshape(-1, 4)[:, :3]
    np.testing.assert_array_equal(rgb, 255 * np.eye(3, dtype=int)[labels])


def test_the_binary_data_unpacks_to_the_header_and_aligned_arrays():
    """latent_map.pack_data (Python) -> points.mjs unpack (the browser): the header as sent, every
    blob back bit for bit in its own dtype, whatever the header's length."""
    from app.components.latent_map import pack_data

    rng = np.random.default_rng(5)
    xy = rng.normal(size=(7, 2)).astype("<f4")
    labels = np.array([0, 3, 255, 1, 2, 9, 4], "<u1")
    index = np.arange(7, dtype="<i4") * 1000
    for pad in ("", "x", "xyz"):  # header lengths that leave the blob area at different offsets
        header = {"key": "m" + pad, "z": [0.5, -1.0], "points": {"n_total": 7}}
        blob = pack_data(header, {"xy": xy.tobytes(), "labels": labels.tobytes(), "index": index.tobytes()})
        src = (
            "import { unpack } from %s;\n"  # noqa: UP031
            % json.dumps("file://" + os.path.abspath(POINTS_JS))
            + "const d = unpack(new Uint8Array(Buffer.from(process.argv[1], 'base64')));  // a Uint8Array, as Streamlit gives\n"  # noqa: E501
            "console.log(JSON.stringify({ key: d.key, z: d.z, points: d.points, xy: Array.from(d.blob('xy', Float32Array)),"  # noqa: E501
            " labels: Array.from(d.blob('labels', Uint8Array)), index: Array.from(d.blob('index', Int32Array)) }));"
        )
        proc = subprocess.run(
            [NODE, "--input-type=module", "-e", src, base64.b64encode(blob).decode()],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert (out["key"], out["z"], out["points"]) == (header["key"], header["z"], header["points"])
        np.testing.assert_array_equal(np.array(out["xy"], np.float32).reshape(7, 2), xy)
        np.testing.assert_array_equal(out["labels"], labels)
        np.testing.assert_array_equal(out["index"], index)


def run_js(expr: str, arg) -> object:
    """Evaluate `expr` (in which `a` is arg, and points.mjs' exports are in scope) with node."""
    src = (
        "import * as P from %s;\nconst a = JSON.parse(process.argv[1]);\n"  # noqa: UP031
        % json.dumps("file://" + os.path.abspath(POINTS_JS))
        + "const { viewTransform, edgeMarker } = P;\nconsole.log(JSON.stringify("
        + expr
        + "));"
    )
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src, json.dumps(arg)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_equal_aspect_view_has_one_scale_and_shows_all_of_the_asked_rectangle():
    """A PCA map with PC1 over 8 units and PC2 over 0.4 (issue 12's case) in an 800 x 500 px box: equal
    aspect gives one px-per-unit for both axes, the whole rectangle inside the box, centred; without it
    each axis fills the box (the rectangle's corners on the box's corners)."""
    box, v = {"x": 52, "y": 10, "w": 800, "h": 500}, {"x0": -4, "x1": 4, "y0": -0.2, "y1": 0.2}
    eq, free = run_js("[viewTransform(a.v, a.box, true), viewTransform(a.v, a.box, false)]", {"v": v, "box": box})
    assert eq["ax"] == pytest.approx(-eq["ay"]) == pytest.approx(100.0)  # min(800 / 8, 500 / 0.4)
    to_screen = lambda t, x, y: (t["ax"] * x + t["bx"], t["ay"] * y + t["by"])  # noqa: E731
    for x, y in [(-4, -0.2), (4, 0.2), (-4, 0.2), (4, -0.2)]:
        sx, sy = to_screen(eq, x, y)
        assert box["x"] - 1e-9 <= sx <= box["x"] + box["w"] + 1e-9 and box["y"] <= sy <= box["y"] + box["h"]
    assert to_screen(eq, 0, 0) == pytest.approx((box["x"] + 400, box["y"] + 250))
    assert to_screen(free, -4, 0.2) == pytest.approx((box["x"], box["y"]))  # top left
    assert to_screen(free, 4, -0.2) == pytest.approx((box["x"] + 800, box["y"] + 500))  # bottom right
    assert free["ax"] == pytest.approx(100.0) and -free["ay"] == pytest.approx(1250.0)  # PC2 stretched 12.5x


def test_a_star_off_the_map_is_marked_on_the_border_pointing_at_it():
    box = {"x": 50, "y": 10, "w": 600, "h": 400}
    cx, cy = 350, 210
    stars = [[2000, 210], [350, -900], [-300, 900], [900, 100], [1e7, -3e6]]
    marks = run_js("a.stars.map(([x, y]) => edgeMarker(x, y, a.box, 14))", {"stars": stars, "box": box})
    for (sx, sy), m in zip(stars, marks):
        # on the border pulled in by 14 px ...
        assert 50 + 14 - 1e-6 <= m["x"] <= 650 - 14 + 1e-6 and 10 + 14 - 1e-6 <= m["y"] <= 410 - 14 + 1e-6
        assert min(abs(m["x"] - 64), abs(m["x"] - 636), abs(m["y"] - 24), abs(m["y"] - 396)) < 1e-6
        # ... on the line from the box's centre to the star, and the arrow's angle points at it
        d, e = np.array([sx - cx, sy - cy], float), np.array([m["x"] - cx, m["y"] - cy])
        assert abs(d[0] * e[1] - d[1] * e[0]) <= 1e-6 * np.linalg.norm(d) * np.linalg.norm(e) and d @ e > 0
        assert m["angle"] == pytest.approx(np.arctan2(d[1], d[0]))
    inside = run_js(
        "[edgeMarker(60, 20, a.box), edgeMarker(650, 410, a.box), edgeMarker(351, 211, a.box)]", {"box": box}
    )
    assert inside == [None, None, None]
