"""Math behind the teaching lab pages (app/lab/): one module per idea, pure functions over a VAE."""
