#!/bin/bash
# Extract patch features on GPUs with a SLURM job array (one GPU per task, shards from the array).
# Submit after tile_array.sh, e.g. `sbatch --dependency=afterok:<tile job id> ...`.
#
#   sbatch examples/slurm/extract_array.sh /path/to/workdir /path/to/uni.safetensors
#
#SBATCH --job-name=healnet-extract
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/extract_%A_%a.log
set -euo pipefail

WORKDIR=${1:?usage: extract_array.sh WORKDIR WEIGHTS_FILE}
WEIGHTS=${2:?usage: extract_array.sh WORKDIR WEIGHTS_FILE}

# Compute nodes are usually offline: never let a library try the hub.
export HF_HUB_OFFLINE=1

# Loader workers default to the CPUs SLURM gave this task (sched_getaffinity), not the node's cores.
# A rerun after a walltime kill (exit 143) resumes: finished slides are fresh and skipped, a
# half-written file is never taken for done. extract locks the task's slides up front; after a node
# failure the rerun takes them over once their locks expire (5 minutes).
rc=0
healnet extract --workdir "$WORKDIR" --extractor uni --weights "$WEIGHTS" \
    --batch-size 256 --precision auto --device cuda --on-error continue || rc=$?
[ "$rc" -eq 3 ] && { echo "some slides failed; see $WORKDIR/features/*/status.csv" >&2; exit 0; }
exit "$rc"
