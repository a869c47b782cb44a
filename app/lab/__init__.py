"""Lab pages, one per idea of the theory. Each module exposes render()."""
from importlib import import_module

# (url slug, title, icon, module name)
_LAB = [
    ("lab-elbo", "1 · ELBO anatomy", "🧮", "elbo_anatomy"),
    ("lab-importance", "2 · Importance sampling", "🎯", "importance_sampling"),
    ("lab-gradients", "3 · Gradient estimators", "📉", "gradient_estimators"),
    ("lab-beta", "4 · β and KL vanishing", "🎚️", "beta_collapse"),
    ("lab-aggregate", "5 · Aggregate posterior & MMD", "🫧", "aggregate_posterior"),
    ("lab-ae", "6 · Autoencoder vs VAE", "🔁", "ae_vs_vae"),
]

PAGES = [(slug, title, icon, import_module(f"{__name__}.{mod}").render) for slug, title, icon, mod in _LAB]
