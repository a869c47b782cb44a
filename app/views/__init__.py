"""Explorer pages. Each module exposes render(); app/main.py turns this list into navigation."""
from app.views import explorer

# (url slug, title, icon, render)
PAGES = [
    ("explorer", "Latent explorer", "🧭", explorer.render),
]
