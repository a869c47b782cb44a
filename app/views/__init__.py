"""Explorer pages. Each module exposes render(); app/main.py turns this list into navigation.

Modules are named, not imported: a page's imports (torch, plotly...) load only when it first runs.
"""

# (url slug, title, icon, module)
PAGES = [
    ("explorer", "Latent explorer", "🧭", "app.views.explorer"),
    ("elbo", "ELBO breakdown", "🧮", "app.views.elbo"),
    ("traversal", "Traversal & interpolation", "🎞️", "app.views.traversal"),
    ("upload", "Upload or draw", "✏️", "app.views.upload"),
    ("train", "Train a model", "🏋️", "app.views.train"),
]
