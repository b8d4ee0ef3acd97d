"""``healnet evaluate``: survival metrics, risk groups, calibration, missing-modality ablation,
attention maps and a self-contained HTML report from ``healnet train`` run folders."""
