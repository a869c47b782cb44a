"""Explorer pages. Each module exposes render(); app/main.py turns this list into navigation.

Modules are named, not imported: a page's imports (torch, plotly...) load only when it first runs.
"""

# (url slug, title, icon, module)
PAGES = [
    ("explorer", "Latent explorer", ":material/explore:", "app.views.explorer"),
    ("compare", "Compare two models", ":material/compare:", "app.views.compare"),
    ("elbo", "ELBO breakdown", ":material/functions:", "app.views.elbo"),
    ("traversal", "Traversal & interpolation", ":material/animation:", "app.views.traversal"),
    ("arithmetic", "Latent arithmetic", ":material/calculate:", "app.views.arithmetic"),
    ("upload", "Upload or draw", ":material/draw:", "app.views.upload"),
    ("replay", "Training replay", ":material/replay:", "app.views.replay"),
    ("model-card", "Model card", ":material/description:", "app.views.model_card"),
    ("train", "Train a model", ":material/model_training:", "app.views.train"),
]
