"""The latent map's overlays (label highlight, q(z|x) sample cloud) in points.mjs, by node's test
runner (tests/map_overlays.test.mjs)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(__file__)
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the map's JS")
def test_the_map_overlays_pass_their_node_tests():
    proc = subprocess.run(
        [NODE, "--test", os.path.join(HERE, "map_overlays.test.mjs")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "# pass 4" in proc.stdout and "# fail 0" in proc.stdout
