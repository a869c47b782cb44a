"""Explorer pages. Each module exposes render(); app/main.py turns this list into navigation."""
from app.views import elbo, explorer, traversal

# (url slug, title, icon, render)
PAGES = [
    ("explorer", "Latent explorer", "🧭", explorer.render),
    ("elbo", "ELBO breakdown", "🧮", elbo.render),
    ("traversal", "Traversal & interpolation", "🎞️", traversal.render),
]
