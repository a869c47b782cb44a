"""Test and benchmark plumbing (not shipped with the app): `streamlit run` servers, headless Chromium,
measurements. Used by tests/browser/ and bench/ (bench/benchlib.py puts the repo root on sys.path)."""
