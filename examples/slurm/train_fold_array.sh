#!/bin/bash
# One cross-validation fold per array task (`--fold K`), then gather and evaluate once all folds
# finished. Every task computes the same patient-level splits from --folds/--seed (or reads
# --splits), so the folds never overlap.
#
#   jid=$(sbatch --parsable examples/slurm/train_fold_array.sh /path/to/workdir runs/healnet_wsi_rna)
#   sbatch --dependency=afterok:$jid examples/slurm/evaluate.sh runs/healnet_wsi_rna
#
#SBATCH --job-name=healnet-fold
#SBATCH --array=0-4
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=logs/fold_%A_%a.log
set -euo pipefail

WORKDIR=${1:?usage: train_fold_array.sh WORKDIR RUN_DIR}
RUN=${2:?usage: train_fold_array.sh WORKDIR RUN_DIR}
export HF_HUB_OFFLINE=1

healnet train --workdir "$WORKDIR" --modalities wsi,rna --model healnet \
    --folds 5 --seed 0 --fold "$SLURM_ARRAY_TASK_ID" --out "$RUN" --resume
