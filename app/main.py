"""Entry point: only builds navigation. Each page module exposes render() and is imported when its
page first runs, so the explorer paints without waiting for the other pages' imports."""

import gc
import os
import sys
import threading
from importlib import import_module

# Run the code beside this file, not another checkout's installed in the same venv (editable install).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app.common import EXPLORER_PATH, checkpoint_listing  # noqa: E402
from app.components.prefetch import prefetch_element_code  # noqa: E402
from app.lab import PAGES as LAB_PAGES  # noqa: E402
from app.safe import guarded  # noqa: E402
from app.settings import training_allowed  # noqa: E402
from app.style import inject as inject_style  # noqa: E402
from app.url_state import open_link, show_notes  # noqa: E402
from app.views import PAGES  # noqa: E402


def lazy_page(module: str):
    """A page callable that imports `module` on its first run, then calls its render()."""

    def render() -> None:
        import_module(module).render()

    render.__name__ = module.rsplit(".", 1)[-1]  # st.Page's routing uses url_path; this is for messages
    return guarded(render, module)


@st.cache_resource(show_spinner=False)
def _sweep_once() -> list[str]:
    """Once per server process: remove temp and lock files that killed runs left in the cache."""
    from vae_core.cache import sweep

    try:
        return sweep()
    except OSError:
        return []


def _process_setup() -> None:
    """The app's process-wide settings, made here at the end of a run and nowhere else.

    Once torch is loaded (by the first page that needs a model), move everything alive out of the
    cyclic collector's sight: torch's modules live as long as the server, and each full pass would
    otherwise walk ~300k objects. Frozen objects are still freed by reference counting. Done once:
    gc.get_freeze_count() > 0 afterwards. (Streamlit's own collection after every rerun is off:
    streamlit_config.toml, runner.postScriptGC.) And then, once, the lab pages are imported and the
    open model's training replay is built in the background (_warm_pages)."""
    if "torch" not in sys.modules:
        return
    if gc.get_freeze_count() == 0:
        gc.freeze()
    _warm_pages(checkpoint_listing()[1])


@st.cache_resource(show_spinner=False)
def _warm_pages(model_path: str | None) -> threading.Thread:
    """Once per process: import the lab pages (altair, vae_core.lab: ~0.9 s on the 2-core machine) and
    build the open model's replay player data (~0.5 s) in a background thread, so that a student's first click
    on those pages does not wait for them. Started once a page has loaded torch, so never during the
    explorer's torch-free first paint; keyed by the model, which is the shipped default for a class. A
    step that fails here fails again, with its message, when its page runs."""

    def run() -> None:
        for *_, module in LAB_PAGES:
            try:
                import_module(module)
            except Exception:  # noqa: BLE001  (its page shows the error)
                pass
        if model_path is not None:
            try:
                import_module("app.views.replay").warm(model_path)
            except Exception:  # noqa: BLE001  (the replay page shows the error)
                pass

    thread = threading.Thread(target=run, name="warm-pages", daemon=True)
    thread.start()
    return thread


def pages(table):
    return [
        st.Page(lazy_page(mod), title=title, icon=icon, url_path=slug)
        for slug, title, icon, mod in table
        if slug != "train" or training_allowed()
    ]


def explore_pages() -> list:
    """The explorer pages, the first one served at "/". Streamlit serves its default page only at "/"
    (its url_path is reserved but unreachable), so "/explorer", the address a lecturer types or
    shares, gets its own page running the same code; app/style.py hides its duplicate sidebar link."""
    _, title, icon, mod = PAGES[0]
    home = st.Page(lazy_page(mod), title=title, icon=icon, url_path=EXPLORER_PATH + "-home", default=True)
    alias = st.Page(lazy_page(mod), title=title, icon=icon, url_path=EXPLORER_PATH)
    return [home] + pages(PAGES[1:]) + [alias]


# The tab icon is a file of the app's own: a Material icon as page_icon is fetched from Google's font
# CDN by the browser (fonts.gstatic.com), which a classroom without internet cannot reach.
FAVICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "favicon.png")
st.set_page_config(page_title="VAE latent-space explorer", page_icon=FAVICON, layout="wide")
open_link()  # once per session: ?model=&z= select the model and set the explorer's z
link_notes = st.container()  # at the top, filled after the page ran: its z changes clear the notes

_sweep_once()
inject_style()
nav = st.navigation({"Explore": explore_pages(), "Lab": pages(LAB_PAGES)}, expanded=True)
nav.run()
show_notes(link_notes)
prefetch_element_code()  # the browser fetches the code of other pages' elements while idle (hidden)
_process_setup()  # not reached when the run stops early (st.rerun, st.stop): the next full run does it
