"""The shipped model's lab chart specs (app/lab/spec_store.py) are committed beside its lab reports, so
a fresh clone's first visit of a lab page reads them instead of building them. A spec's file name
follows the code that draws it, so editing a lab page or app/lab/charts.py leaves that page's files
stale: tests/test_shipped_lab_views.py notices, and this script writes the current ones.

    python tests/harness/lab_views.py     # then: git add -f checkpoints/**/*.view-*.json

`run_lab_pages(folder)` opens every lab page at its defaults under streamlit.testing against the
checkpoint folder `folder` (reports already there are read, not computed) and returns, per page, the
charts that had to be built because their spec was not on disk.
"""

from __future__ import annotations

import glob
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_SCRIPT = """
import streamlit as st
from importlib import import_module
import app.lab.charts as charts
built = st.session_state.setdefault("built", [])
build = charts.vega_lite
def counting(chart):
    built.append(1)
    return build(chart)
charts.vega_lite = counting
try:
    st.set_page_config(layout="wide")
    import_module({module!r}).render()
finally:
    charts.vega_lite = build
"""


def run_lab_pages(folder: str) -> dict[str, int]:
    """{page slug: charts built (0 when every spec was read from disk)}; raises on a page exception."""
    from streamlit.testing.v1 import AppTest

    from app.lab import PAGES

    os.environ["VAE_CHECKPOINT_DIR"] = folder
    built = {}
    for slug, _title, _icon, module in PAGES:
        at = AppTest.from_string(_SCRIPT.format(module=module), default_timeout=900)
        at.run()
        if at.exception:
            raise RuntimeError(f"{slug}: {at.exception[0].message}")
        built[slug] = len(at.session_state["built"])
    return built


def main() -> None:
    sys.path.insert(0, REPO)
    folder = os.path.join(REPO, "checkpoints")
    stale = glob.glob(os.path.join(folder, "*.view-*.json")) + glob.glob(os.path.join(folder, "lab", "*.view-*.json"))
    for f in stale:  # the current ones are written again below
        os.remove(f)
    built = run_lab_pages(folder)
    print("charts written per lab page:", built)


if __name__ == "__main__":
    main()
