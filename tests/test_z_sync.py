"""The z protocol (app/components/z_sync.py) on its own: Python's ZSync here, the browser's twin
(app/components/latent_decoder/z_sync.mjs) by node's test runner (tests/z_sync.test.mjs), and both
halves talking to each other through the messages they exchange."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from app.components.z_sync import ZSync

HERE = os.path.dirname(os.path.abspath(__file__))
JS_TWIN = os.path.join(HERE, "..", "app", "components", "latent_decoder", "z_sync.mjs")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the JS twin")


def test_sets_bump_the_revision_and_clip_to_the_slider_range():
    s = ZSync([0.0, 0.0], slider_range=3.0, origin="start")
    assert s.message() == {"z": [0.0, 0.0], "rev": 1} and s.origin == "start"
    s.set(np.array([4.5, -1.0], np.float32), origin="μ of test #7")  # a map click on a far-out point
    assert s.message() == {"z": [3.0, -1.0], "rev": 2}
    assert s.clipped == [0] and s.origin == "μ of test #7"
    s.set(torch.tensor([0.5, -3.5]))
    assert s.z == [0.5, -3.0] and s.clipped == [1] and s.rev == 3
    s.set([0.0, 0.0])  # the same value again is still a set: the sliders must move back to it
    assert s.rev == 4 and s.clipped == []


def test_a_report_at_the_current_revision_is_accepted_without_a_new_revision():
    s = ZSync([0.0, 0.0])
    assert s.report({"z": [1.25, -2.0], "rev": 1})
    assert s.message() == {"z": [1.25, -2.0], "rev": 1}  # the echo: the browser keeps its sliders
    assert s.origin == "dragged by hand"
    assert s.report({"z": [1.5, -2.0], "rev": 1})  # releases while the echo is on its way
    assert s.report({"z": [1.5, 0.5], "rev": 1})
    assert s.message() == {"z": [1.5, 0.5], "rev": 1}


def test_a_report_made_before_a_set_is_stale():
    s = ZSync([0.0, 0.0])  # rev 1: the browser's sliders were last set at rev 1
    s.set([2.0, 2.0])  # "z = 0" or a map click reaches Python first: rev 2
    assert not s.report({"z": [1.0, 1.0], "rev": 1})  # the release made at rev 1 loses
    assert s.message() == {"z": [2.0, 2.0], "rev": 2}
    assert s.report({"z": [1.0, 1.0], "rev": 2})  # made after the browser saw rev 2


def test_a_report_clears_the_clipped_notice_and_stays_in_range():
    s = ZSync([5.0, 0.0])
    assert s.clipped == [0]
    assert s.report({"z": [9.0, -0.5], "rev": 1})  # sliders cannot go there; a bad client is clipped
    assert s.z == [3.0, -0.5] and s.clipped == []


@pytest.mark.parametrize(
    "msg",
    [
        None,
        [1.0, 2.0],
        {"z": [1.0], "rev": 1},
        {"z": [1.0, "x"], "rev": 1},
        {"z": [1.0, float("nan")], "rev": 1},
        {"z": None, "rev": 1},
        {"rev": 1},
        {"z": [1.0, 2.0]},
    ],
)
def test_malformed_reports_are_ignored(msg):
    s = ZSync([0.0, 0.0])
    assert not s.report(msg)
    assert s.message() == {"z": [0.0, 0.0], "rev": 1}


def test_a_new_model_may_change_the_length_and_bad_sets_fail_clearly():
    s = ZSync([0.0, 0.0])
    s.set([0.1, 0.2, 0.3])
    assert s.message() == {"z": [0.1, 0.2, 0.3], "rev": 2}
    assert not s.report({"z": [0.0, 0.0], "rev": 2})  # the old model's sliders
    with pytest.raises(ValueError, match="finite numbers"):
        s.set([0.0, float("inf"), 0.0])


@needs_node
def test_the_js_twin_passes_its_node_tests():
    p = subprocess.run(
        [NODE, "--test", os.path.join(HERE, "z_sync.test.mjs")], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "# fail 0" in p.stdout and "# pass 0" not in p.stdout


# Both halves in one conversation: Python's messages go to the JS ZSync (node), whose reports come back.
_BROWSER = """
import { ZSync } from %s;
let text = "";
for await (const chunk of process.stdin) text += chunk;
const s = new ZSync(), out = [];
for (const [what, arg] of JSON.parse(text)) {
  if (what === "receive") out.push({ moved: s.receive(arg), z: Array.from(s.z) });
  else if (what === "edit") { s.edit(arg[0], arg[1]); out.push(s.report()); }
  else if (what === "map") { s.local(arg); out.push(s.report()); }
}
process.stdout.write(JSON.stringify(out));
"""


def browser(steps: list) -> list:
    src = _BROWSER % json.dumps("file://" + os.path.abspath(JS_TWIN))
    p = subprocess.run(
        [NODE, "--input-type=module", "-e", src], input=json.dumps(steps), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@needs_node
def test_python_and_the_browser_agree_through_their_messages():
    py = ZSync([0.0, 0.0, 0.0])
    first = py.message()
    # the browser mounts (moves to z), the user drags slider 1 and releases (report A), then drags slider 2
    # and releases (report B) before Python's echo of A arrives; then a map click at mu, which Python also sets
    mu = [0.25, -0.5, 1.0]
    out = browser([["receive", first], ["edit", [1, 1.5]], ["edit", [2, -2.0]]])
    assert out[0] == {"moved": True, "z": [0.0, 0.0, 0.0]}
    report_a, report_b = out[1], out[2]
    assert py.report(report_a) and py.report(report_b)
    echo_a_state = {"z": report_a["z"], "rev": py.rev}  # what Python sent after applying A only
    out = browser([["receive", first], ["edit", [1, 1.5]], ["edit", [2, -2.0]], ["receive", echo_a_state], ["map", mu]])
    assert out[3] == {"moved": False, "z": [0.0, 1.5, -2.0]}  # A's echo does not undo B
    report_after_click = out[4]
    py.set(mu, origin="μ of test #3")  # Python's set for the same click: a new rev
    assert not py.report(report_after_click)  # made at the old rev: stale, Python keeps mu
    assert py.z == mu
    out = browser([["receive", first], ["receive", py.message()], ["edit", [0, 0.75]]])
    assert out[1] == {"moved": True, "z": mu}
    assert py.report(out[2]) and py.z == [0.75, -0.5, 1.0]
