"""june: speech."""
