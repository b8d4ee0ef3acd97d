#!/bin/bash
# Train on cohort A, validate on cohort B: cross-validate on A (plus one model refitted on all of A),
# apply it to B's workspace and score B. B is tiled, extracted and imported exactly like A (same
# `healnet tile` / `healnet extract` options and weights), with its own workdir; predict checks that
# and refuses features from another extractor, weights or patch size (exit 2) before any work.
#
#   sbatch examples/slurm/external_validation.sh /path/to/workdir_A /path/to/workdir_B runs/healnet_A
#
#SBATCH --job-name=healnet-external
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=08:00:00
#SBATCH --output=logs/external_%j.log
set -euo pipefail

WORKDIR_A=${1:?usage: external_validation.sh WORKDIR_A WORKDIR_B RUN_DIR}
WORKDIR_B=${2:?usage: external_validation.sh WORKDIR_A WORKDIR_B RUN_DIR}
RUN=${3:?usage: external_validation.sh WORKDIR_A WORKDIR_B RUN_DIR}
export HF_HUB_OFFLINE=1

# After a walltime kill, resubmit: --resume continues the folds, then trains the refit
# (refit/ is skipped once written). The options must stay those the run was created with.
healnet train --workdir "$WORKDIR_A" --modalities wsi,rna --model healnet \
    --folds 5 --seed 0 --out "$RUN" --resume --refit-all
healnet evaluate "$RUN" --bootstrap 1000

# The fold ensemble (every fold's model, each with its own preprocessing) and the refit model;
# outputs in B's workspace: predictions/<run name>/ and predictions/<run name>-refit/.
NAME=$(basename "$RUN")
healnet predict "$RUN" --workdir "$WORKDIR_B"
healnet predict "$RUN" --workdir "$WORKDIR_B" --model refit --out "$WORKDIR_B/predictions/$NAME-refit"
healnet evaluate "$WORKDIR_B/predictions/$NAME" --bootstrap 1000
healnet evaluate "$WORKDIR_B/predictions/$NAME-refit" --bootstrap 1000
