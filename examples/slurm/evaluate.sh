#!/bin/bash
# Gather the folds of a run trained as an array (train_fold_array.sh), then write the metrics,
# the missing-modality ablation and the HTML report. CPU only.
#
#   sbatch --dependency=afterok:<fold array id> examples/slurm/evaluate.sh runs/healnet_wsi_rna
#
#SBATCH --job-name=healnet-evaluate
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=01:00:00
#SBATCH --output=logs/evaluate_%j.log
set -euo pipefail

RUN=${1:?usage: evaluate.sh RUN_DIR}
export HF_HUB_OFFLINE=1

healnet train --gather --out "$RUN"
healnet evaluate "$RUN" --ablate --bootstrap 1000
