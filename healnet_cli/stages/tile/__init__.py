"""``healnet tile``: tissue detection and patch grids at a physical resolution (see docs/tile.md)."""
