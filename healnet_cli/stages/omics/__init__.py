"""``healnet omics``: omics and clinical tables into per-modality Parquet files and survival labels."""

from healnet_cli.stages.omics.config import LabelsConfig, OmicsConfig, TableSpec
from healnet_cli.stages.omics.run import run_labels, run_omics

__all__ = ["LabelsConfig", "OmicsConfig", "TableSpec", "run_labels", "run_omics"]
