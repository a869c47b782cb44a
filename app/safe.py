"""What a served app owes its users: their strings shown as text, and no page ever a traceback.

`plain(s)` makes any string (a file name, a dataset path, an error message that quotes one) safe
to put inside Streamlit's Markdown elements (st.error, st.caption, st.markdown ...): every ASCII
punctuation character is backslash-escaped, which CommonMark defines as that literal character.
So `[x](javascript:...)` stays text instead of a link, `$...$` is not LaTeX, `**` is not bold and
`www.x.org` is not auto-linked. HTML needs no escaping: the app never sets unsafe_allow_html.

`guarded(render)` is the last line of defence around each page: an exception no page handled is
logged on the server with its traceback and shown to the user as one line, without internals.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Callable

import streamlit as st

_LOG = logging.getLogger("app")
_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(s: object) -> str:
    """str(s) with Markdown (and Streamlit's :directives:, $LaTeX$) neutralised: shows as typed."""
    return _PUNCT.sub(r"\\\1", str(s))


def guarded(render: Callable[[], None], page: str) -> Callable[[], None]:
    """render, with any unexpected exception turned into an st.error (Streamlit's own control
    flow, st.rerun and st.stop, are BaseExceptions and pass through)."""

    def run() -> None:
        try:
            render()
        except Exception as e:  # noqa: BLE001 - the point: nothing reaches the browser as a traceback
            _LOG.exception("page %s failed", page)
            st.error(
                f"This page hit an unexpected problem and stopped: {plain(type(e).__name__)}: "
                f"{plain(_first_line(e))}. The other pages still work; the server log has the details."
            )

    run.__name__ = render.__name__
    return run


def _first_line(e: Exception, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:limit]
