"""app.components.prefetch: the element code it has the browser fetch is found in the installed Streamlit
(its file names carry build hashes, so an upgrade that renames or merges them shows up here), and the
frontend's index script is where the component looks for it (the base its imports resolve against)."""

from __future__ import annotations

import os
import re

from app.components.prefetch import ELEMENTS, chunk_files, static_js_dir


def test_every_element_is_one_file_of_the_installed_streamlit():
    files = chunk_files()
    assert [f.split(".")[0] for f in files] == list(ELEMENTS)
    for f in files:
        assert re.fullmatch(r"[\w-]+\.[\w-]+\.js", f) and os.path.isfile(os.path.join(static_js_dir(), f))


def test_an_unknown_element_is_skipped():
    assert chunk_files(("NoSuchElement", "Table")) == tuple(f for f in chunk_files() if f.startswith("Table."))


def test_the_frontend_loads_from_a_module_script_in_static_js():
    # component.js resolves the chunks against document.querySelector('script[type="module"][src*="/static/js/index."]')
    with open(os.path.join(os.path.dirname(static_js_dir()), "..", "index.html"), encoding="utf-8") as f:
        html = f.read()
    tag = re.search(r"<script[^>]*src=\"\./static/js/index\.[\w-]+\.js\"[^>]*>", html)
    assert tag and 'type="module"' in tag.group(0)
