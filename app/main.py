"""Entry point: only builds navigation. Each page module exposes render() and is imported when its
page first runs, so the explorer paints without waiting for the other pages' imports."""
from importlib import import_module

import streamlit as st

from app.lab import PAGES as LAB_PAGES
from app.views import PAGES


def lazy_page(module: str):
    """A page callable that imports `module` on its first run, then calls its render()."""
    def render() -> None:
        import_module(module).render()
    render.__name__ = module.rsplit(".", 1)[-1]  # st.Page's routing uses url_path; this is for messages
    return render


st.set_page_config(page_title="VAE latent-space explorer", page_icon="🧭", layout="wide")
nav = st.navigation({
    "Explore": [st.Page(lazy_page(mod), title=title, icon=icon, url_path=slug) for slug, title, icon, mod in PAGES],
    "Lab": [st.Page(lazy_page(mod), title=title, icon=icon, url_path=slug) for slug, title, icon, mod in LAB_PAGES],
})
nav.run()
