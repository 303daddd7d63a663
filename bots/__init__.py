"""june: bots."""
