#!/bin/bash
# Train with DistributedDataParallel on the GPUs of one node (torchrun, NCCL; gloo on CPU).
# Same options and outputs as a single-process run; metrics agree within noise.
#
#   sbatch examples/slurm/train_torchrun.sh /path/to/workdir runs/healnet_wsi_rna
#
#SBATCH --job-name=healnet-train
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=08:00:00
#SBATCH --output=logs/train_%j.log
set -euo pipefail

WORKDIR=${1:?usage: train_torchrun.sh WORKDIR RUN_DIR}
RUN=${2:?usage: train_torchrun.sh WORKDIR RUN_DIR}
GPUS=${SLURM_GPUS_ON_NODE:-4}
export HF_HUB_OFFLINE=1

# After a walltime kill, resubmit the same script: --resume continues from the last finished
# fold and epoch (checkpoints are written atomically). A fold that fails on any rank stops the
# whole job (exit 1, the log names the fold and rank) instead of leaving the other ranks waiting.
srun torchrun --standalone --nproc-per-node "$GPUS" -m healnet_cli \
    train --workdir "$WORKDIR" --modalities wsi,rna --model healnet \
    --folds 5 --seed 0 --epochs 50 --max-patches 4096 --precision auto \
    --out "$RUN" --resume
