"""Explorer pages. Each module exposes render(); app/main.py turns this list into navigation."""
from app.views import elbo, explorer, train, traversal, upload

# (url slug, title, icon, render)
PAGES = [
    ("explorer", "Latent explorer", "🧭", explorer.render),
    ("elbo", "ELBO breakdown", "🧮", elbo.render),
    ("traversal", "Traversal & interpolation", "🎞️", traversal.render),
    ("upload", "Upload or draw", "✏️", upload.render),
    ("train", "Train a model", "🏋️", train.render),
]
