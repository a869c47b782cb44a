"""The page's URL carries the open model and the explorer's z, so a link sent to students opens the
same view:   <app>/explorer?model=<checkpoint file name>&z=0.5,-1.2,0,...

Opening (open_link, called by app/main.py on every run, acting once per session): `model` is looked
up in the checkpoint folder's listing (app.z_share.resolve_model: a name, never a path) and selected
in the sidebar; `z` is checked against that model's latent_dim (from its header, no torch) and
handed to the explorer's ZSync (app.views.explorer_z.hand_over, origin LINK_ORIGIN). A bad value
gives one note naming the parameter (show_notes, at the top of the page) and the page opens with its
defaults; the notes stay until the user changes z or the model.

Keeping in step (keep_in_url, from the explorer's decoder panel on each run): st.query_params is
rewritten to the open model and z. Every rewrite is a browser history entry, so a drag decoded on
the server, which reports z every ~100 ms, writes at most every URL_PACE_S; a set (click, button,
link, upload) and a release decoded in the browser write at once (url_due).
Session-state keys, all prefixed link_.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import streamlit as st

from app.safe import plain
from app.z_share import ShareError, link_query, parse_z, resolve_model

LINK_ORIGIN = "from the link"
URL_PACE_S = 1.0  # a dragged z reaches the URL (one history entry) at most this often
P = "link_"


def url_due(last: tuple[int, float] | None, rev: int, now: float, paced: bool) -> bool:
    """Whether a z that differs from the URL's is written now. last: (ZSync rev, time) of the last
    write. A new rev is a set: always. The same rev is a report (a drag): at once unless `paced`
    (server decoding, previews while dragging), then only URL_PACE_S after the last write."""
    return last is None or not paced or rev != last[0] or now - last[1] >= URL_PACE_S


def open_link() -> None:
    """Once per session: apply the URL's `model` and `z` (see the module docstring)."""
    if P + "opened" in st.session_state:
        return
    st.session_state[P + "opened"] = True
    qp = st.query_params
    model, z_text = qp.get("model"), qp.get("z")
    if model is None and z_text is None:
        return
    from app.common import checkpoint_listing, select_checkpoint

    rows, path = checkpoint_listing()
    notes = []
    if model is not None:
        try:
            path = resolve_model(model, rows)
            select_checkpoint(path)
        except ShareError as e:
            path = None
            notes.append(
                f"This link's model was not opened: {e}. Showing the default model"
                + (", without the link's z." if z_text is not None else ".")
            )
    row = next((r for r in rows if r["path"] == path), None)
    if z_text is not None and row is not None:
        try:
            if "model_config" not in row:
                raise ShareError("the z parameter needs a readable model, and this one is not")
            z = parse_z(z_text, int(row["model_config"]["latent_dim"]))
        except ShareError as e:
            notes.append(f"This link's z was not used: {e}. The sliders start on the first map point.")
        else:
            from app.views.explorer_z import hand_over

            hand_over(path, z, LINK_ORIGIN)
    st.session_state[P + "notes"] = notes


def show_notes(where) -> None:
    """The link's problems, one warning each in container `where`, until the user changes z or the model."""
    for note in st.session_state.get(P + "notes", []):
        where.warning(plain(note), icon=":material/link_off:")


def keep_in_url(model_path: str, z, rev: int, paced: bool) -> None:
    """Rewrite ?model=&z= to this model and z when they differ and url_due says so."""
    query = link_query(model_path, z)
    qp = st.query_params
    if {k: qp.get(k) for k in query} == query:
        return
    now = time.monotonic()
    if not url_due(st.session_state.get(P + "last_write"), rev, now, paced):
        return  # a later run writes it (the next release or any click)
    qp.update(query)  # one message, one history entry
    st.session_state[P + "last_write"] = (rev, now)
    first = st.session_state.setdefault(P + "first_query", query)
    if query != first:  # the user moved on from what the link opened: its notes no longer apply
        st.session_state.pop(P + "notes", None)


def share_url(model_path: str, z) -> str:
    """The link to this view: the page's URL as the browser shows it (st.context.url, no query)
    plus ?model=&z=; only the query when the URL is unknown (tests)."""
    return (st.context.url or "") + "?" + urlencode(link_query(model_path, z))
