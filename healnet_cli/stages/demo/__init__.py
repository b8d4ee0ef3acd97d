"""``healnet demo``: an embedded synthetic cohort and the whole pipeline run on it through the CLI."""
