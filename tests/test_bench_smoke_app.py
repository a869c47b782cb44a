"""Every bench script that serves the app or drives a browser runs end to end with --smoke (tiny sizes,
no targets), in a subprocess. The compute bench scripts are in test_bench_smoke.py.
"""

from __future__ import annotations

import pytest

from tests.harness.bench_run import have_chromium, run_bench

needs_chromium = pytest.mark.skipif(
    not have_chromium(), reason="Chromium is missing (tests/harness/browser.py CHROMIUM)"
)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_browser_latency_smoke(tmp_path):
    out, text = run_bench("browser_latency.py", tmp_path)
    assert "slider drag: mouse move -> new frame painted" in text
    assert "map click -> sliders show the point" in text


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_app_memory_smoke(tmp_path):
    out, text = run_bench("app_memory.py", tmp_path)
    assert "server peak RSS (VmHWM)" in text
    assert "(2,000 points)" in text


def test_classroom_smoke(tmp_path):
    """Two simulated students speak Streamlit's websocket protocol to `streamlit run app/main.py`:
    every step (open, click, release, lab page) finishes and shows its effect, with no error."""
    out, text = run_bench("classroom.py", tmp_path, timeout=900)
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9] == "0", row  # errors
    assert all(float(v) > 0 for v in cells[5].split(" / ")), row  # every step timed


def test_conv_drag_smoke(tmp_path):
    out, text = run_bench("conv_drag.py", tmp_path, timeout=900)
    assert "conv: drag at 120 Hz mouse moves" in text or "is missing" in text


def test_export_html_smoke(tmp_path):
    out, text = run_bench("export_html.py", tmp_path, timeout=900)
    assert "| file size |" in text or "is missing" in text


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_map_scale_browser_smoke(tmp_path):
    out, text = run_bench("map_scale.py", tmp_path, "--only", "browser")
    assert "Two-frame floor" in text
    for n in ("300", "2,000"):  # one row per size: renderer, first paint, zoom and pan percentiles
        row = next(line for line in text.splitlines() if line.startswith(f"| {n} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] in ("canvas", "webgl", "webgl2")
        assert all(float(c.replace(",", "")) > 0 for c in cells[2:7])


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_lab_pages_smoke(tmp_path):
    """Two servers (reports computed, then read from disk), a student clicking through labs 1-2 and
    the ELBO breakdown: a row per page, every time measured, no page showing an exception."""
    out, text = run_bench("lab_pages.py", tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| 1 · ") or line.startswith("| 2 · ")]
    assert len(rows) == 2, text
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[1:6]), row  # computed, first, new student, again, full load
        assert cells[6] in ("yes", "no"), row  # "exception shown" would fail here
