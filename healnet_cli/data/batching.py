"""Patient tables and batches: preprocessed vectors, lazily loaded WSI bags, padding masks,
length bucketing, per-sample modality dropout and training-only bag subsampling."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from healnet_cli.data.cohort import WSI, Cohort
from healnet_cli.data.preprocess import BagScaler, OmicsPreprocess


@dataclass
class PatientTable:
    """Model-ready inputs of a list of patients (one fold's preprocessing applied).

    ``vectors[m]`` is ``[n, f]`` float32 (absent rows hold the imputed medians and are masked by
    ``present[m]``); bags are read from ``cohort`` on first use, standardised with the fold's
    ``bag_scaler`` (when there is one) and cached.
    """

    ids: list[str]
    modalities: list[str]
    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    cohort: Cohort | None = None
    bag_lengths: np.ndarray | None = None
    bag_scaler: BagScaler | None = None
    _bags: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def bag(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[N, D]`` and coords ``[N, 2]`` (float32) of row ``row``'s whole bag."""
        pid = self.ids[row]
        if pid not in self._bags:
            assert self.cohort is not None, "a table with bags has the cohort they are read from"
            feats, coords, _ = self.cohort.load_bag(pid)
            if self.bag_scaler is not None:
                feats = self.bag_scaler.transform(feats)
            self._bags[pid] = (torch.from_numpy(feats), torch.from_numpy(coords))
        return self._bags[pid]

    def lengths(self) -> np.ndarray:
        """Bag length per row (0 without WSI); zeros when no bag modality is used."""
        if self.bag_lengths is None:
            return np.zeros(len(self.ids), dtype=np.int64)
        return self.bag_lengths


def build_table(
    cohort: Cohort,
    ids: Sequence[str],
    preprocess: Mapping[str, OmicsPreprocess | BagScaler],
    *,
    drop: Mapping[str, Collection[str]] | None = None,
) -> PatientTable:
    """Apply a fold's fitted preprocessing to ``ids`` (omics states per modality; ``preprocess[WSI]``,
    when present, standardises bag features); ``drop[pid]`` marks modalities absent."""
    ids = [str(p) for p in ids]
    drop = drop or {}
    vectors, present = {}, {}
    for m in cohort.modalities:
        pres = np.array(cohort.presence[m].reindex(ids).fillna(False).to_numpy(bool), dtype=bool, copy=True)
        pres &= np.array([m not in drop.get(p, ()) for p in ids], dtype=bool)
        present[m] = pres
        if m != WSI:
            frame = cohort.omics[m].reindex(ids)
            state = cast(OmicsPreprocess, preprocess[m])  # every key but WSI holds an omics state
            vec = state.transform(frame)
            vec[~pres] = state.median.astype(np.float32)  # absent or dropped: training medians
            vectors[m] = vec
    lengths = None
    if WSI in cohort.modalities:
        lengths = np.array(
            [sum(r.n_patches for r in cohort.slides.get(p, [])) if present[WSI][i] else 0 for i, p in enumerate(ids)],
            dtype=np.int64,
        )
    scaler = cast("BagScaler | None", preprocess.get(WSI))
    return PatientTable(ids, list(cohort.modalities), vectors, present, cohort, lengths, scaler)


def drop_modalities(present: Mapping[str, np.ndarray], p: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-sample modality dropout: each present modality is dropped with probability ``p``; a
    sample never loses all of its modalities (one of its present ones is kept at random)."""
    out = {m: v.copy() for m, v in present.items()}
    if p <= 0 or not out:
        return out
    names = list(out)
    before = np.stack([present[m] for m in names], axis=1)
    keep = before & (rng.random(before.shape) >= p)
    lost = before.any(axis=1) & ~keep.any(axis=1)
    for i in np.flatnonzero(lost):
        choices = np.flatnonzero(before[i])
        keep[i, rng.choice(choices)] = True
    return {m: keep[:, j] for j, m in enumerate(names)}


def make_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None, *, bucket_batches: int = 32
) -> list[np.ndarray]:
    """Row indices per batch. With ``rng`` (training): shuffled, and within windows of
    ``bucket_batches`` batches sorted by bag length (less padding); without: in order."""
    n = len(lengths)
    order = np.arange(n)
    if rng is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    if np.any(lengths > 0):
        window = batch_size * bucket_batches
        parts = [order[i : i + window] for i in range(0, n, window)]
        order = np.concatenate([p[np.argsort(lengths[p], kind="stable")] for p in parts])
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(
    table: PatientTable,
    rows: np.ndarray,
    *,
    present: Mapping[str, np.ndarray] | None = None,
    max_patches: int | None = None,
    rng: np.random.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """A model batch for ``rows``. ``max_patches`` (training only) subsamples bags with ``rng``;
    ``present`` overrides the table's presence (modality dropout)."""
    from healnet_cli.models import ModalityInput

    present = present if present is not None else {m: v[rows] for m, v in table.present.items()}
    batch = {}
    for m in table.modalities:
        pres = torch.from_numpy(np.asarray(present[m], dtype=bool))
        if not pres.any():
            continue
        if m != WSI:
            batch[m] = ModalityInput(torch.from_numpy(table.vectors[m][rows]).to(device), pres.to(device))
            continue
        bags: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for j, r in enumerate(rows):
            if not pres[j]:
                bags.append(None)
                continue
            feats, coords = table.bag(int(r))
            if max_patches is not None and rng is not None and len(feats) > max_patches:
                keep = torch.from_numpy(np.sort(rng.choice(len(feats), max_patches, replace=False)))
                feats, coords = feats[keep], coords[keep]
            bags.append((feats, coords))
        dim = next(b[0].shape[1] for b in bags if b is not None)
        n_max = max(len(b[0]) for b in bags if b is not None)
        data = torch.zeros(len(rows), n_max, dim)
        xy = torch.zeros(len(rows), n_max, 2)
        mask = torch.zeros(len(rows), n_max, dtype=torch.bool)
        for j, b in enumerate(bags):
            if b is None:
                continue
            n = len(b[0])
            data[j, :n], xy[j, :n], mask[j, :n] = b[0].float(), b[1], True
        batch[m] = ModalityInput(data.to(device), pres.to(device), mask.to(device), xy.to(device))
    if not batch:  # every sample lacks every modality (e.g. all dropped): one all-absent key
        m = table.modalities[0]
        none = torch.zeros(len(rows), dtype=torch.bool, device=device)
        if m != WSI:
            batch[m] = ModalityInput(torch.from_numpy(table.vectors[m][rows]).to(device), none)
        else:
            assert table.cohort is not None, "a table with the WSI modality has its cohort"
            dim = table.cohort.bag_dim()
            batch[m] = ModalityInput(
                torch.zeros(len(rows), 1, dim, device=device),
                none,
                torch.zeros(len(rows), 1, dtype=torch.bool, device=device),
                torch.zeros(len(rows), 1, 2, device=device),
            )
    return batch
