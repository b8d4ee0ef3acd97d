"""Pipeline stages: one package per command (tile, extract, omics, train, evaluate, demo)."""
