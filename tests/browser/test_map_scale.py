"""The latent map at 60k points in headless Chromium (tests/browser/map_app.py: the component alone):
a click picks the nearest point and the server gets it, hover fetches that point's image on demand,
colour by value follows viridis, the CPU canvas fallback and the WebGL path both draw, and above
100k points in view a density image stands in until you zoom in."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from app.settings import DEBUG_HOOKS_ENV
from tests.harness.browser import StreamlitServer
from tests.harness.map_bench import write_points

pytestmark = pytest.mark.browser
N = 60_000


def clustered(n, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (10, k))
    labels = rng.integers(0, 10, n)
    return (centres[labels] + rng.normal(0, 0.6, (n, k))).astype(np.float32), labels


@pytest.fixture(scope="module")
def server(browser):
    with StreamlitServer("tests/browser/map_app.py", env={DEBUG_HOOKS_ENV: "1"}) as s:
        yield s


@pytest.fixture(scope="module")
def points_60k(tmp_path_factory):
    means, labels = clustered(N)
    return write_points(str(tmp_path_factory.mktemp("map") / "p60k.npz"), means, labels)


def open_map(page, server, path, n, query=""):
    page.goto(f"{server.url}/?points={path}{query}")
    page.wait_for_function(
        "n => window.__vaeMap && window.__vaeMap.draws >= 1 && window.__vaeMap.drawn >= n", arg=n, timeout=300_000
    )
    return page.evaluate("window.__vaeMap.renderer")


def screen_points(page) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xy viewport px, test index, row) of every visible point in the plot box."""
    pts = page.evaluate("() => window.__vaeMap.points().map(p => [p.x, p.y, p.testIndex, p.row])")
    a = np.array(pts, np.float64)
    return a[:, :2], a[:, 2].astype(int), a[:, 3].astype(int)


def isolated(xy, spacing, count, seed=0):
    """Indices of `count` points with no other point within `spacing` px."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(xy).query(xy, k=2)
    ok = np.flatnonzero(d[:, 1] >= spacing)
    return np.random.default_rng(seed).choice(ok, count, replace=False)


def test_a_click_on_a_60k_map_loads_the_nearest_point(page, server, points_60k):
    assert open_map(page, server, points_60k, N) in ("canvas", "webgl", "webgl2")
    xy, index, _ = screen_points(page)
    assert len(xy) > 0.9 * N  # the whole set is in the fitted view
    rng = np.random.default_rng(1)
    for target in rng.choice(len(xy), 3, replace=False):
        q = xy[target] + rng.uniform(-3, 3, 2)  # near a point, not exactly on it: the nearest one wins
        d = ((xy - q) ** 2).sum(1)
        want = int(index[np.argmin(d)])
        page.mouse.click(*q)
        page.get_by_text(f"selected #{want}").wait_for(timeout=300_000)  # the server got it
        assert page.evaluate("window.__vaeMap.selectedIndex()") == want


def test_hover_fetches_the_points_image_on_demand(page, server, points_60k):
    open_map(page, server, points_60k, N)
    xy, index, _ = screen_points(page)
    tip = page.locator("[data-testid=vae-map-tip] canvas")
    requests = page.evaluate("window.__vaeMap.thumbRequests")
    for _k, i in enumerate(isolated(xy, 12, 2, seed=2)):
        page.mouse.move(*xy[i])
        page.mouse.move(xy[i][0] + 1, xy[i][1])
        deadline = time.monotonic() + 300  # a hang guard
        while tip.get_attribute("data-test-index") != str(index[i]) or not tip.is_visible():
            assert time.monotonic() < deadline, "no hover image"
            time.sleep(0.1)
        shown = np.array(tip.evaluate("c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"))
        bits = (index[i] >> np.arange(64)) & 1  # write_points: the test index in binary, one bit a pixel
        np.testing.assert_allclose(shown.reshape(8, 8, 4)[..., 0].ravel(), bits * 255, atol=1)
    assert page.evaluate("window.__vaeMap.thumbRequests") - requests == 2  # one request per neighbourhood
    # a neighbour of the last point came in the same batch: its image shows without another request
    d = ((xy - xy[i]) ** 2).sum(1)
    j = int(np.argsort(d)[1])
    page.mouse.move(*xy[j])
    picked = page.evaluate("([x, y]) => window.__vaeMap.pick(x, y)", list(xy[j]))
    deadline = time.monotonic() + 300
    while tip.get_attribute("data-test-index") != str(picked):
        assert time.monotonic() < deadline, "no hover image for the neighbour"
        time.sleep(0.1)
    assert page.evaluate("window.__vaeMap.thumbRequests") - requests == 2


def test_colour_by_value_follows_viridis_with_a_colour_bar(page, server, points_60k):
    mpl = pytest.importorskip("matplotlib")
    open_map(page, server, points_60k, N, "&colour=value")
    page.get_by_text("mean 1").first.wait_for(timeout=300_000)  # the colour bar's title
    with np.load(points_60k) as f:
        values = f["means"][:, 0]
    lo, hi = np.percentile(values, [1, 99])
    rows = np.random.default_rng(3).choice(N, 200, replace=False)
    got = np.array(page.evaluate("rows => rows.map(r => window.__vaeMap.colourOf(r))", rows.tolist()))
    want = np.array(mpl.colormaps["viridis"](np.clip((values[rows] - lo) / (hi - lo), 0, 1)))[:, :3] * 255
    assert np.abs(got[:, :3] - want).max() <= 6
    # and that colour is what is on screen at an isolated point (alpha over the white page)
    xy, _, row = screen_points(page)
    for i in isolated(xy, 10, 3, seed=4):
        shot = Image.open(
            io.BytesIO(page.screenshot(clip={"x": xy[i][0] - 0.5, "y": xy[i][1] - 0.5, "width": 1, "height": 1}))
        )
        c = np.array(page.evaluate("r => window.__vaeMap.colourOf(r)", int(row[i])), np.float64)
        a = c[3] / 255
        np.testing.assert_allclose(np.array(shot.convert("RGB"))[0, 0], c[:3] * a + 255 * (1 - a), atol=12)


@pytest.mark.parametrize("renderer", ["canvas", "webgl"])
def test_both_renderers_draw_the_points(page, server, points_60k, renderer):
    """renderer=canvas is the fallback without WebGL (the page asks for it as data); renderer=webgl
    draws with WebGL even where it is a software rasteriser (headless Chromium)."""
    got = open_map(page, server, points_60k, N, f"&renderer={renderer}")
    assert got.startswith(renderer)
    assert page.evaluate("window.__vaeMap.drawn") == N
    box = page.locator("[data-testid=vae-map-points]").bounding_box()
    shot = np.array(Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")).astype(int)
    coloured = (shot.max(2) - shot.min(2)) > 60  # label colours, not the white page or grey axes
    assert coloured.mean() > 0.05


def test_above_100k_points_a_density_image_until_zoomed_in(page, server, tmp_path):
    means, labels = clustered(120_000, k=2, seed=5)
    path = write_points(str(tmp_path / "p120k.npz"), means, labels)
    open_map(page, server, path, 120_000)
    assert page.evaluate("window.__vaeMap.density") is True
    box = page.locator("[data-testid=vae-map-canvas]").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(12):  # zoom in around the centre, a step at a time, until points replace the density
        draws = page.evaluate("window.__vaeMap.draws")
        page.mouse.wheel(0, -200)
        page.wait_for_function("n => window.__vaeMap.draws > n", arg=draws, timeout=300_000)
        if not page.evaluate("window.__vaeMap.density"):
            break
    assert page.evaluate("window.__vaeMap.density") is False
    assert 50_000 < len(screen_points(page)[0]) <= 100_000


def test_an_equal_aspect_map_marks_a_star_off_the_map_at_its_border(page, server, points_60k):
    """map_app's plane map is equal-aspect: one data unit as many px across as up. A z far outside the
    view (a `vae:z` event, as the decoder's sliders send) puts the star's marker on the plot's border,
    in the star's direction; back inside, the marker goes and the star is drawn where z projects."""
    open_map(page, server, points_60k, N)
    sx, sy = page.evaluate("window.__vaeMap.scale()")
    assert sx == pytest.approx(sy, rel=1e-9)
    box = page.locator("[data-testid=vae-map-canvas]").bounding_box()

    def send_z(z):
        draws = page.evaluate("window.__vaeMap.draws")
        page.evaluate("z => window.dispatchEvent(new CustomEvent('vae:z', { detail: { z } }))", z)
        page.wait_for_function("n => window.__vaeMap.draws > n", arg=draws, timeout=300_000)

    r = page.evaluate("window.__vaeMap.visibleRange()")
    cx, cy = (r["x0"] + r["x1"]) / 2, (r["y0"] + r["y1"]) / 2
    send_z([cx + 50 * (r["x1"] - r["x0"]), cy, 0.0, 0.0])  # far to the right
    mark = page.evaluate("window.__vaeMap.starOffMap()")
    assert mark is not None and mark["angle"] == pytest.approx(0.0, abs=1e-6)
    assert box["width"] * 0.9 < mark["x"] < box["width"]  # at the right border, inside the canvas
    send_z([cx, cy - 50 * (r["y1"] - r["y0"]), 0.0, 0.0])  # far below
    mark = page.evaluate("window.__vaeMap.starOffMap()")
    assert mark["angle"] == pytest.approx(np.pi / 2, abs=1e-6) and box["height"] * 0.8 < mark["y"] < box["height"]
    send_z([cx, cy, 0.0, 0.0])
    assert page.evaluate("window.__vaeMap.starOffMap()") is None
    at = page.evaluate("window.__vaeMap.starAt()")
    assert at[0] == pytest.approx(box["width"] / 2 + 21, abs=2)  # the plot box's centre (margins 52 / 10 px)
