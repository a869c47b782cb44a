"""Lab pages, one per idea of the theory. Each module exposes render(); app/main.py imports it
only when the page runs."""

# (url slug, title, icon, module)
PAGES = [
    ("lab-elbo", "1 · ELBO anatomy", "🧮", "app.lab.elbo_anatomy"),
    ("lab-importance", "2 · Importance sampling", "🎯", "app.lab.importance_sampling"),
    ("lab-gradients", "3 · Gradient estimators", "📉", "app.lab.gradient_estimators"),
    ("lab-beta", "4 · β and KL vanishing", "🎚️", "app.lab.beta_collapse"),
    ("lab-aggregate", "5 · Aggregate posterior & MMD", "🫧", "app.lab.aggregate_posterior"),
    ("lab-ae", "6 · Autoencoder vs VAE", "🔁", "app.lab.ae_vs_vae"),
]
