"""nsm package."""
