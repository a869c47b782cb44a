"""Test and benchmark support (not used by the app itself)."""
