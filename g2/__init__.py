"""g2 package."""
