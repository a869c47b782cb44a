"""The repository passes its own linter and formatter (ruff, configured in pyproject.toml), so the
README's one test command also checks style on every CI run."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )  # a hang guard only


def test_ruff_check_passes():
    r = _ruff("check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    r = _ruff("format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr
