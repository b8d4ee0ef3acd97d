#!/bin/bash
# Tile + extract on ONE GPU node with the slides staged to node-local disk ($TMPDIR), for shared file
# systems too slow for random patch reads. The slides are copied once, `healnet tile` runs on the
# local copies (so the coordinates point to them), then one extract process per GPU (torchrun: each
# rank takes shard RANK/WORLD_SIZE and GPU LOCAL_RANK). Outputs go to the shared workdir.
#
#   sbatch examples/slurm/extract_staged.sh /path/to/slides /path/to/workdir /path/to/uni.bin
#
# The coordinates record the staged path: to extract again later (another model), run this
# script again; it re-stages and re-tiles (about a second per slide) before extracting.
#
#SBATCH --job-name=healnet-staged
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=12:00:00
#SBATCH --tmp=500G
#SBATCH --output=logs/staged_%j.log
set -euo pipefail

SLIDES=${1:?usage: extract_staged.sh SLIDES_DIR WORKDIR WEIGHTS}
WORKDIR=${2:?usage: extract_staged.sh SLIDES_DIR WORKDIR WEIGHTS}
WEIGHTS=${3:?usage: extract_staged.sh SLIDES_DIR WORKDIR WEIGHTS}
GPUS=${SLURM_GPUS_ON_NODE:-4}
LOCAL=${TMPDIR:-/tmp}/healnet-slides
export HF_HUB_OFFLINE=1

mkdir -p "$LOCAL"
# rsync skips files already staged by a previous (timed-out) attempt on the same node
rsync -a --include='*.svs' --include='*.tif' --include='*.tiff' --include='*.ndpi' --exclude='*' \
    "$SLIDES"/ "$LOCAL"/

rc=0
healnet tile "$LOCAL" --workdir "$WORKDIR" --shard 0/1 --on-error continue || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && exit "$rc"

rc=0
torchrun --standalone --nproc-per-node "$GPUS" --no-python \
    healnet extract --workdir "$WORKDIR" --extractor uni --weights "$WEIGHTS" --batch-size 256 \
    --on-error continue || rc=$?
if [ "$rc" -ne 0 ]; then
    # torchrun reports any rank's non-zero exit as 1, a partial success (3) included
    echo "extract exited $rc; failed slides and reasons: $WORKDIR/features/uni/status-shard-*.csv" >&2
fi
exit "$rc"
