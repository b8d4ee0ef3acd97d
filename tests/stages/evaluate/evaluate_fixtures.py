"""Helpers for the evaluate tests: synthetic run folders (the layout `healnet train` writes) and a fake inference
module."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

GENES = [f"GENE{i}" for i in range(8)]


def _parquet(path: Path, frame: pd.DataFrame, meta: dict | None, *, index: bool = False) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=index)
    if meta is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"healnet": json.dumps(meta).encode()})
    pq.write_table(table, path)


def cohort(n: int, seed: int) -> pd.DataFrame:
    """Patients with two modality components of the log-hazard and exponential times."""
    rng = np.random.default_rng(seed)
    comp_wsi, comp_rna = rng.normal(size=n), rng.normal(size=n)
    t_event = rng.exponential(20.0 * np.exp(-(comp_wsi + comp_rna)))
    t_cens = rng.uniform(5.0, 60.0, size=n)
    ids = [f"P{i:03d}" for i in range(n)]
    return pd.DataFrame(
        {
            "patient_id": ids,
            "comp_wsi": comp_wsi,
            "comp_rna": comp_rna,
            "time": np.minimum(t_event, t_cens) + 0.1,
            "event": t_event <= t_cens,
        }
    )


def make_run(
    folder: Path,
    *,
    n: int = 60,
    n_folds: int = 3,
    seed: int = 0,
    noise: float = 0.3,
    n_bins: int = 4,
    modalities: tuple[str, ...] = ("wsi", "rna"),
    gathered: bool = True,
    checkpoints: bool = True,
) -> Path:
    """Write a run folder with out-of-fold predictions of a noisy version of the true risk."""
    folder.mkdir(parents=True, exist_ok=True)
    c = cohort(n, 0)
    rng = np.random.default_rng(seed)
    c["fold"] = np.arange(n) % n_folds
    risk = c["comp_wsi"] + c["comp_rna"] + noise * rng.normal(size=n)
    edges = {}
    frames = []
    for k in range(n_folds):
        train = c[c["fold"] != k]
        ev = train.loc[train["event"], "time"].to_numpy()
        e = [0.0] + np.quantile(ev, np.linspace(0, 1, n_bins + 1)[1:-1]).tolist() + [float("inf")]
        edges[str(k)] = [None if not np.isfinite(x) else x for x in e]
        part = c[c["fold"] == k].copy()
        part["risk"] = risk[part.index]
        ends = np.array(e[1:], dtype=float)
        ends[-1] = ends[-2] * 1.5
        surv = np.exp(-np.outer(np.exp(part["risk"]), ends) / 25.0)
        for j in range(n_bins):
            part[f"surv_{j}"] = surv[:, j]
        for m in modalities:
            part[f"has_{m}"] = True
        frames.append(part.drop(columns=["comp_wsi", "comp_rna"]))
        (folder / f"fold_{k}").mkdir(exist_ok=True)
        if checkpoints:
            (folder / f"fold_{k}" / "checkpoint.pt").write_bytes(b"fake")
        if not gathered:
            _parquet(
                folder / f"fold_{k}" / "predictions.parquet",
                frames[-1],
                {"bin_edges": edges[str(k)], "time_unit": "months", "model": "healnet", "modalities": list(modalities)},
            )
    preds = pd.concat(frames, ignore_index=True)
    meta = {"bin_edges": edges, "time_unit": "months", "model": "healnet", "modalities": list(modalities)}
    if gathered:
        _parquet(folder / "predictions.parquet", preds, meta)
    labels = c.set_index("patient_id")[["time", "event"]]
    _parquet(folder / "labels.parquet", labels, {"time_unit": "months"}, index=True)
    rows = [
        (p, k, "test" if f == k else "train")
        for p, f in zip(c["patient_id"], c["fold"], strict=True)
        for k in range(n_folds)
    ]
    pd.DataFrame(rows, columns=["patient_id", "fold", "split"]).to_csv(folder / "splits.csv", index=False)
    opts = {"workdir": str(folder / "no_workdir"), "model": "healnet", "modalities": list(modalities)}
    (folder / "config.yaml").write_text(yaml.safe_dump({"command": "train", "options": opts}))
    return folder


@dataclass
class FakeFoldModel:
    fold: int
    modalities: list[str]
    components: pd.DataFrame
    model_name: str = "healnet"
    feature_names: dict[str, list[str]] = field(default_factory=lambda: {"rna": list(GENES)})


class FakeInference:
    """Risk = sum of the present modalities' components: removing one loses signal."""

    def __init__(self, modalities=("wsi", "rna"), single_token: bool = False):
        self.modalities = list(modalities)
        self.single_token = single_token
        self.components = cohort(60, 0).set_index("patient_id")
        self.calls: list[dict] = []

    def load_fold(self, run_dir, fold, *, workdir=None, device="cpu", cohort=None):
        return FakeFoldModel(fold, self.modalities, self.components)

    def predict_patients(self, fm, patient_ids, *, drop=None, return_weights=False, batch_size=8, bag_cache=None):
        drop = drop or {}
        self.calls.append({"fold": fm.fold, "drop": drop, "weights": return_weights})
        ids = [str(p) for p in patient_ids]
        risk = np.array(
            [sum(self.components.at[p, f"comp_{m}"] for m in fm.modalities if m not in drop.get(p, ())) for p in ids],
            dtype=float,
        )
        frame = pd.DataFrame({"patient_id": ids, "risk": risk})
        weights, bags = None, {}
        if return_weights:
            weights = {}
            for i, p in enumerate(ids):
                w_rna = np.array([1.0]) if self.single_token else np.linspace(0.1, 1.0, len(GENES))[::-1].copy()
                coords = np.array([[x * 256, y * 256] for x in range(4) for y in range(3)], dtype=np.int64)
                weights[p] = {"rna": w_rna, "wsi": np.linspace(0, 1, 12) * (i + 1)}
                bags[p] = [(f"{p}-slide", coords)]
        return SimpleNamespace(frame=frame, weights=weights, bags=bags)


def make_workspace(workdir: Path, *, n: int = 24, n_genes: int = 6, dim: int = 8, seed: int = 0) -> Path:
    """A tiny workspace (omics/rna, labels, features/toy/ bags, tiles/ with thumbnails) whose
    survival depends on one gene and on the mean WSI feature."""
    import torch
    from PIL import Image

    from healnet_cli.artifacts.coords import SlideCoords, write_coords
    from healnet_cli.artifacts.features import features_path, write_features
    from healnet_cli.artifacts.omics import write_labels, write_modality

    rng = np.random.default_rng(seed)
    ids = [f"TCGA-XX-{i:04d}" for i in range(n)]
    rna = pd.DataFrame(rng.normal(size=(n, n_genes)), index=ids, columns=[f"G{j}" for j in range(n_genes)])
    slide_signal = rng.normal(size=n)
    hazard = np.exp(rna["G0"].to_numpy() + slide_signal)
    t_event, t_cens = rng.exponential(30.0 / hazard), rng.uniform(10.0, 80.0, n)
    labels = pd.DataFrame({"time": np.minimum(t_event, t_cens) + 0.5, "event": t_event <= t_cens}, index=ids)
    omics = workdir / "omics"
    write_modality(omics / "rna.parquet", rna, {"modality": "rna", "sources": {}})
    write_labels(omics / "labels.parquet", labels, {"time_unit": "months", "sources": {}})
    feats, tiles = workdir / "features" / "toy", workdir / "tiles"
    tiles.mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        slide = f"{pid}-01Z-00-DX1"
        xy = np.array([[x * 256, y * 256] for x in range(3) for y in range(2)], dtype=np.int64)
        f = rng.normal(size=(len(xy), dim)).astype(np.float32) + slide_signal[i]
        write_features(
            features_path(feats, slide),
            torch.from_numpy(f),
            torch.from_numpy(xy),
            {"slide_id": slide, "case_id": pid, "extractor": "toy"},
        )
        Image.new("RGB", (24, 16), (235, 210, 225)).save(tiles / f"{slide}.png")
        meta = {
            "slide_id": slide,
            "case_id": pid,
            "source_path": f"{slide}.svs",
            "mpp": 0.5,
            "patch_px": 256,
            "patch_px_level0": 256,
            "read_level": 0,
            "read_patch_px": 256,
            "thumbnail_png": f"{slide}.png",
            "thumbnail_downsample": 32.0,
        }
        write_coords(tiles / f"{slide}.parquet", SlideCoords(xy[:, 0], xy[:, 1], np.ones(len(xy), np.float32), meta))
    return workdir
