"""bk package."""
