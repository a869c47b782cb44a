"""Lab pages, one per idea of the theory. Each module exposes render(); app/main.py imports it
only when the page runs."""

# (url slug, title, icon, module)
PAGES = [
    ("lab-elbo", "1 · ELBO anatomy", ":material/functions:", "app.lab.elbo_anatomy"),
    ("lab-importance", "2 · Importance sampling", ":material/target:", "app.lab.importance_sampling"),
    ("lab-gradients", "3 · Gradient estimators", ":material/trending_down:", "app.lab.gradient_estimators"),
    ("lab-beta", "4 · β and KL vanishing", ":material/tune:", "app.lab.beta_collapse"),
    ("lab-aggregate", "5 · Aggregate posterior & MMD", ":material/bubble_chart:", "app.lab.aggregate_posterior"),
    ("lab-ae", "6 · Autoencoder vs VAE", ":material/compare_arrows:", "app.lab.ae_vs_vae"),
]
