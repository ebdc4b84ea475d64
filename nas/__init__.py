"""nas: design-space explorer."""
