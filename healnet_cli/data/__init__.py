"""Data layer shared by ``train`` and ``evaluate``: cohort assembly, splits, per-fold preprocessing,
batching and inference from a run folder."""
