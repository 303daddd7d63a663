"""june: june."""
