"""``healnet extract``: per-slide patch features from the tile stage's coordinates."""
