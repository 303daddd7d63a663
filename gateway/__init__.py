"""june: gateway."""
