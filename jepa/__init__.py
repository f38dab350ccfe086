"""jepa package."""
