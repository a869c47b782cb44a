"""The training replay player (app/components/replay_player.py and its player.mjs, run by node): what
Python packs is what the browser draws. Positions survive the uint16 round trip to well under a pixel,
snapshot k's tile of the sheet is snapshot k's images, Play stops at the last snapshot, and the readout
states the replay's own numbers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from app.components.replay_player import map_box, player_data, quantize
from vae_core.cache import default_checkpoint_path
from vae_core.replay import epoch_mosaic, load_replay, replay_path

NODE = shutil.which("node")
PLAYER_JS = os.path.join(os.path.dirname(__file__), "..", "app", "components", "replay_player", "player.mjs")
PROJECT_JS = os.path.join(os.path.dirname(__file__), "..", "vae_core", "js", "project.mjs")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the player's JS")


def node(expr: str, arg) -> object:
    """Evaluate `expr` with node, `a` bound to arg (JSON) and player.mjs' exports in scope (ticks from
    project.mjs, as in the component's module)."""
    src = (
        f"import {{ ticks }} from {json.dumps('file://' + os.path.abspath(PROJECT_JS))};\n"
        "globalThis.ticks = ticks;\n"
        f"const P = await import({json.dumps('file://' + os.path.abspath(PLAYER_JS))});\n"
        "Object.assign(globalThis, P);\n"
        'let text = "";\nfor await (const chunk of process.stdin) text += chunk;\n'
        "const a = JSON.parse(text);\n"
        f"process.stdout.write(JSON.stringify({expr}));\n"
    )
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src], input=json.dumps(arg), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def shipped():
    rpath = replay_path(default_checkpoint_path())
    if not os.path.exists(rpath):
        pytest.skip("the shipped model's replay is not present")
    r = load_replay(rpath)
    return r, player_data(r, (1, 28, 28))


def test_quantize_keeps_positions_to_a_hundred_thousandth_of_the_box():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(5, 300, 2)).astype(np.float16)
    box = map_box(xy)
    assert box["x0"] < xy[..., 0].min() and box["y1"] > xy[..., 1].max()  # padded: every point inside
    q = quantize(xy, box)
    back = np.array([box["x0"], box["y0"]]) + q / 65535 * (np.array([box["x1"], box["y1"]]) - [box["x0"], box["y0"]])
    span = max(box["x1"] - box["x0"], box["y1"] - box["y0"])
    assert np.abs(back - xy.astype(np.float64)).max() <= span / 65535


@needs_node
def test_the_browser_decodes_every_snapshot_as_packed(shipped):
    r, data = shipped
    q = np.frombuffer(data.blobs["xy"], "<u2")
    h = data.header
    for e in (0, 37, len(r.epochs) - 1):
        got = node(
            "Array.from(snapshotXY(Uint16Array.from(a.q), a.e, a.n, a.box))",
            {"q": q.tolist(), "e": e, "n": h["n_points"], "box": h["box"]},
        )
        span = max(h["box"]["x1"] - h["box"]["x0"], h["box"]["y1"] - h["box"]["y0"])
        np.testing.assert_allclose(np.reshape(got, (-1, 2)), r.xy[e].astype(np.float64), atol=span / 65535 + 1e-6)
    assert np.array_equal(np.frombuffer(data.blobs["kl_per_dim"], "<f4").reshape(r.kl_per_dim.shape), r.kl_per_dim)
    assert h["epochs"] == r.epochs.tolist() and np.allclose(h["elbo"], r.elbo, atol=1e-4)


@needs_node
def test_tile_k_of_the_sheet_is_snapshot_k(shipped):
    from PIL import Image

    r, data = shipped
    sheet = data.header["sheet"]
    png = np.asarray(Image.open(io.BytesIO(data.blobs["sheet"])))
    ks = [0, 1, 11, len(r.epochs) - 1]
    rects = node("a.ks.map((k) => tileRect(k, a.sheet))", {"ks": ks, "sheet": sheet})
    for k, rect in zip(ks, rects):
        want = np.round(epoch_mosaic(r, k, (1, 28, 28)) * 255)
        assert (rect["h"], rect["w"]) == want.shape
        np.testing.assert_allclose(
            png[rect["sy"] : rect["sy"] + rect["h"], rect["sx"] : rect["sx"] + rect["w"]], want, atol=1
        )


@needs_node
def test_play_steps_to_the_last_snapshot_and_stops_and_starts_again_from_the_first():
    got = node(
        "[[0, 1, 8, 9].map((i) => nextIndex(i, 10)), [0, 4, 9].map((i) => playFrom(i, 10))]",
        None,
    )
    assert got == [[1, 2, 9, None], [0, 4, 0]]


@needs_node
def test_axes_and_readout():
    got = node(
        "({log: logTicks(-4, 1.3), kl: klRange([0.001, 3.2, 0.5], 0.01), flat: klRange([0.001], 0.01),"
        " powers: [1e-4, 1e-3, 0.01, 0.1, 1, 10].map(powerText), near: nearestEpoch([1, 2, 5, 10], 6.9),"
        " rng: seriesRange([-100, -90], [10, 20]),"
        " text: readout({epochs: [1, 2, 3], elbo: [-120.5, -100.25, -95], recon: [-110, -90, -80.126],"
        "  kl: [10.5, 10.25, 14.874], k: 4, collapsed: 0.01}, 2, [0.5, 0.001, 0.02, 0.0099])})",
        None,
    )
    assert got["log"] == [-4, -3, -2, -1, 0, 1]
    assert got["kl"][0] == -4 and got["kl"][1] == pytest.approx(np.log10(3.2) + 0.1)
    assert got["flat"][1] == pytest.approx(np.log10(0.1) + 0.1)  # at least 10x the collapse threshold
    assert got["powers"] == ["1e\u22124", "0.001", "0.01", "0.1", "1", "10"]
    assert got["near"] == 2 and got["rng"] == pytest.approx([-106.0, 26.0])
    dot, minus = "\u00b7", "\u2212"
    assert got["text"] == (
        f"epoch 3 of 3 {dot} ELBO {minus}95.00 {dot} E_q log p(x|z) {minus}80.13 {dot} KL 14.87 {dot} "
        "2 of 4 dimensions alive"
    )
