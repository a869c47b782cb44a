"""The app's small global stylesheet: the pages must read on a 1024×768 or 1280×720 projector as well as
on a 1920×1080 screen (tests/browser/test_layout.py checks all three and keeps screenshots).

Streamlit lays widgets out in columns whose widths follow the window, but some of its elements
do not follow their column: an image keeps its requested pixel width and spills over its neighbour,
and button and metric labels are cut to "p…". The rules below make them follow the column instead,
and give a 768 px high window back the space above the title, so the explorer's sliders start on
the first screen. Components (the latent map, the decoder) draw in their own shadow roots, which
these rules do not reach.
"""

from __future__ import annotations

import streamlit as st

from app.common import EXPLORER_PATH
from app.components.prefetch import KEY as PREFETCH_KEY

# Narrow windows: a 1024 px projector keeps 1024 - 300 (sidebar) - 2 * 80 (padding) = 564 px for the
# page at Streamlit's defaults. A slimmer sidebar and padding leave ~720 px.
NARROW_PX = 1366

# The explorer's hover preview (key explorer_hover) as a direct child of a column, so that the rules
# below pick its own row of columns, not the map's row that holds it further down.
HOVER_CHILD = '> [data-testid="stVerticalBlock"] > .st-key-explorer_hover'
PREVIEW_COLUMN = '> [data-testid="stColumn"] ' + HOVER_CHILD

CSS = f"""
/* "/explorer" runs the same page as "/" (app/main.py): list it once. */
[data-testid="stSidebarNav"] li:has(a[href$="/{EXPLORER_PATH}"]) {{ display: none; }}

/* The element-code prefetcher (app/components/prefetch.py) draws nothing: no empty row at the page's end. */
.st-key-{PREFETCH_KEY} {{ display: none; }}

/* Images follow their column: max-width only on the img is not enough, the container keeps the
   requested width (84 px in a 38 px column) and the image spills over the text beside it. */
[data-testid="stImageContainer"], [data-testid="stImageCaption"] {{ max-width: 100% !important; }}
[data-testid="stImage"] img {{ max-width: 100% !important; height: auto; object-fit: contain; }}

/* Labels wrap instead of being cut to "KL(q(z|x) ‖ …": buttons, download buttons and metrics. */
[data-testid="stMetricLabel"] .stMarkdownEllipsis p,
[data-testid="stMetricLabel"] .stMarkdownEllipsis,
.stButton .stMarkdownEllipsis, .stDownloadButton .stMarkdownEllipsis,
.stButton .stMarkdownEllipsis p, .stDownloadButton .stMarkdownEllipsis p {{
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere;
}}
[data-testid="stMetricValue"] {{ font-size: clamp(1.35rem, 2.2vw, 2.25rem); }}

/* A compact header: the title block starts near the top and the title takes one line. */
[data-testid="stHeader"] {{ height: 2.25rem; min-height: 2.25rem; }}  /* opaque: the menu never sits on text */
[data-testid="stMainBlockContainer"] {{ padding-top: 2.5rem !important; padding-bottom: 3rem !important; }}
[data-testid="stMainBlockContainer"] h1 {{ font-size: 2rem; padding: 0.25rem 0 0.5rem 0; }}

/* Display formulas (st.latex, the lab pages) scroll sideways instead of being cut off at a projector's
   width (KaTeX never wraps a display formula), and are a little smaller there. */
.katex-display {{ overflow-x: auto; overflow-y: hidden; padding-bottom: 0.25rem; }}

@media (max-width: {NARROW_PX}px) {{
  .katex-display {{ font-size: 0.86em; }}
  [data-testid="stMainBlockContainer"] {{ padding-left: 1.5rem !important; padding-right: 1.5rem !important; }}
  section[data-testid="stSidebar"][aria-expanded="true"], section[data-testid="stSidebar"][data-collapsed="false"] {{
    width: 256px !important; min-width: 256px !important;
  }}
  [data-testid="stSidebarNav"] .stMarkdownEllipsis, [data-testid="stSidebarNav"] .stMarkdownEllipsis p {{
    white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  }}
  [data-testid="stMainBlockContainer"] h1 {{ font-size: 1.6rem; }}
  .stButton button, .stDownloadButton button {{ padding-left: 0.6rem; padding-right: 0.6rem; }}
  /* the hover preview on a line of its own, the clicked point's images and note on the next */
  [data-testid="stHorizontalBlock"]:has({PREVIEW_COLUMN}) > [data-testid="stColumn"]:has({HOVER_CHILD}) {{
    flex-basis: 100%;
  }}
}}
@media (max-height: 800px) {{
  [data-testid="stMainBlockContainer"] h1 {{ font-size: 1.5rem; padding: 0 0 0.25rem 0; }}
}}

/* The explorer's preview row under the map (hover image, clicked point, its reconstruction, the
   note): each column as wide as its content, wrapping to a second line rather than squeezing
   "hover a point to see its image here" to one word a line. */
[data-testid="stHorizontalBlock"]:has({PREVIEW_COLUMN}) {{
  flex-wrap: wrap; row-gap: 0.5rem;
}}
[data-testid="stHorizontalBlock"]:has({PREVIEW_COLUMN}) > [data-testid="stColumn"] {{
  flex: 0 1 auto; width: auto; min-width: 84px;
}}
"""


def inject() -> None:
    """Called once per run by app/main.py, before the page: a style-only st.html goes to Streamlit's
    event container and takes no space on the page."""
    st.html(f"<style>{CSS}</style>")
