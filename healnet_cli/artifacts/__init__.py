"""On-disk contracts between stages: one module per artifact, each with a schema name and
``write_*`` / ``read_*`` functions that validate what they read and name the command to rerun."""
