#!/bin/bash
# Tile a cohort with a SLURM job array: each task takes every N-th slide of the sorted list.
# `healnet tile` reads its shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT (no --shard needed),
# skips slides already tiled with the same options, and never writes another task's files.
#
#   sbatch examples/slurm/tile_array.sh /path/to/slides /path/to/workdir
#
#SBATCH --job-name=healnet-tile
#SBATCH --array=0-15
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=logs/tile_%A_%a.log
set -euo pipefail

SLIDES=${1:?usage: tile_array.sh SLIDES_DIR WORKDIR}
WORKDIR=${2:?usage: tile_array.sh SLIDES_DIR WORKDIR}

# Exit codes: 0 all slides done, 3 some slides failed (the rest is usable; reasons in
# $WORKDIR/tiles/status.csv), 2 bad input before any work, 1 crash.
rc=0
healnet tile "$SLIDES" --workdir "$WORKDIR" --mpp 0.5 --patch-size 256 --min-tissue 0.5 \
    --export clam --on-error continue || rc=$?
if [ "$rc" -eq 3 ]; then
    echo "some slides failed; see $WORKDIR/tiles/status.csv" >&2
    exit 0   # do not block dependent jobs: failed slides are simply absent downstream
fi
exit "$rc"
