"""One module per area; each has `router`."""
