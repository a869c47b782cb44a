"""Fetch the code of Streamlit's heavier elements in the browser's idle time (st.components.v2).

Streamlit's frontend loads an element's code the first time a page shows one. The explorer, where a
student starts, draws no Vega-Lite chart, table or LaTeX, so the first lab page waited ~1 s for that
code on a 2-core machine (bench/lab_pages.py: lab 1 at 1.4-1.7 s for a new student, 0.4-0.6 s once
loaded). `prefetch_element_code()`, on every page, has the browser import those modules once per tab
when it is idle (prefetch/component.js), by the URLs the frontend uses, so a later page finds them
loaded. The file names carry Streamlit's build hashes: they are looked up in the installed Streamlit's
static folder, and a name not found there is skipped (that element then loads as it did before).
"""

from __future__ import annotations

import functools
import json
import os

import streamlit as st

from app.components.assets import read_asset

# Entry modules of the elements the explorer does not draw, in the order a student meets them (their
# own imports come with them): Vega-Lite (altair charts: every lab page, the ELBO page), st.table,
# LaTeX (lab 1), progress bars, st.multiselect (lab 3), st.spinner (lab 4).
ELEMENTS = (
    "embed",
    "ArrowVegaLiteChart",
    "Table",
    "rehype-katex",
    "Progress",
    "Multiselect",
    "Spinner",
)
KEY = "element_code"  # its element is hidden (app/style.py): it draws nothing

_COMPONENT = st.components.v2.component("vae_prefetch", js=read_asset("prefetch", "component.js"))


def static_js_dir() -> str:
    return os.path.join(os.path.dirname(st.__file__), "static", "static", "js")


@functools.cache
def chunk_files(elements: tuple[str, ...] = ELEMENTS) -> tuple[str, ...]:
    """The installed Streamlit's file for each element ("<name>.<hash>.js"), those found only."""
    try:
        files = os.listdir(static_js_dir())
    except OSError:
        return ()
    found = []
    for name in elements:
        match = [f for f in files if f.endswith(".js") and f.count(".") == 2 and f.split(".")[0] == name]
        if len(match) == 1:
            found.append(match[0])
    return tuple(found)


def prefetch_element_code() -> None:
    # bytes, not a dict of lists: Streamlit looks for dataframes in the latter (and imports pandas)
    _COMPONENT(key=KEY, data=json.dumps({"chunks": list(chunk_files())}).encode())
