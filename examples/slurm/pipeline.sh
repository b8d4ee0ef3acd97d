#!/bin/bash
# Submit the whole pipeline as dependent jobs (run on the login node, not with sbatch).
#
#   bash examples/slurm/pipeline.sh /path/to/slides /path/to/study_all_clean.csv /path/to/workdir /path/to/weights
#
# afterok only fires when every array task exited 0: the tile/extract scripts map exit code 3
# (some items failed, outputs usable) to 0, so one corrupt slide does not stall the chain.
set -euo pipefail

SLIDES=${1:?usage: pipeline.sh SLIDES_DIR OMICS_TABLE WORKDIR WEIGHTS}
TABLE=${2:?usage: pipeline.sh SLIDES_DIR OMICS_TABLE WORKDIR WEIGHTS}
WORKDIR=${3:?usage: pipeline.sh SLIDES_DIR OMICS_TABLE WORKDIR WEIGHTS}
WEIGHTS=${4:?usage: pipeline.sh SLIDES_DIR OMICS_TABLE WORKDIR WEIGHTS}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p logs

# Omics tables are small: prepare them right here (seconds, no GPU).
healnet omics "$TABLE" --workdir "$WORKDIR"

tile=$(sbatch --parsable "$HERE/tile_array.sh" "$SLIDES" "$WORKDIR")
extract=$(sbatch --parsable --dependency=afterok:"$tile" "$HERE/extract_array.sh" "$WORKDIR" "$WEIGHTS")
folds=$(sbatch --parsable --dependency=afterok:"$extract" "$HERE/train_fold_array.sh" "$WORKDIR" runs/healnet_wsi_rna)
sbatch --dependency=afterok:"$folds" "$HERE/evaluate.sh" runs/healnet_wsi_rna
