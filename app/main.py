"""Entry point: only builds navigation. Each page module exposes render()."""
import streamlit as st

from app.views import PAGES
from app.lab import PAGES as LAB_PAGES

st.set_page_config(page_title="VAE latent-space explorer", page_icon="🧭", layout="wide")
nav = st.navigation({
    "Explore": [st.Page(fn, title=title, icon=icon, url_path=slug) for slug, title, icon, fn in PAGES],
    "Lab": [st.Page(fn, title=title, icon=icon, url_path=slug) for slug, title, icon, fn in LAB_PAGES],
})
nav.run()
