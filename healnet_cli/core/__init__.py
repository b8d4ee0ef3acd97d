"""Stage-agnostic plumbing shared by every stage: errors, atomic writes, the artifact store,
status tables, sharding, configuration, the workspace layout, console output and devices.

Nothing here imports typer; torch is imported lazily (``device`` only)."""
