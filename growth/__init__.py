"""growth package."""
