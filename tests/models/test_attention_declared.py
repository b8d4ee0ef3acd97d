"""`healnet evaluate` skips the attention pass of an omics-only run without loading its models when
the run's options say the model returns no per-feature weights (`known_nothing_to_draw`). That
declaration must agree with what each model really returns: here every registered model (and
HEALNet with per-feature tokens and with a linear clinical path) is run with ``return_weights=True``
and its weights go through the same accumulator as evaluate's probe."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from test_model_contract import EXTRA_CASES, MODEL_CASES, N_TOKENS, TOY_HPARAMS, _compatible, _model

from healnet_cli.stages.evaluate.attention import known_nothing_to_draw, nothing_to_draw

OMICS = ("rna", "cnv")


def _modalities(name: str) -> tuple[str, ...]:
    return ("clinical",) if name == "cox-clinical" else OMICS


class _Probe:
    """The pieces of ``FoldModels`` / the inference port that ``nothing_to_draw`` uses, backed by a
    real model's forward."""

    def __init__(self, model, name, mods, toy):
        self.model, self.mods, self.toy = model, mods, toy
        self.fm = SimpleNamespace(
            model_name=name, feature_names={m: [f"{m}_{j}" for j in range(toy.specs(mods)[m].dim)] for m in mods}
        )
        self.inference = self

    def get(self, fold):
        return self.fm

    def predict_patients(self, fm, ids, *, return_weights, batch_size):
        batch = self.toy.batch(self.toy.specs(self.mods), {m: [True] * len(N_TOKENS) for m in self.mods}, N_TOKENS)
        with torch.no_grad():
            out = self.model.eval()(batch, return_weights=True)
        per_patient = {
            f"p{i}": {m: w[i].detach().numpy() for m, w in (out.weights or {}).items() if m in self.mods}
            for i in range(len(N_TOKENS))
        }
        return SimpleNamespace(weights=per_patient)


def _run(name: str, hp: dict, mods: tuple[str, ...]) -> SimpleNamespace:
    preds = pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(N_TOKENS))], "fold": 0})
    return SimpleNamespace(
        modalities=list(mods), folds=[0], model_name=name, options={"hparams": hp}, predictions=preds
    )


CASES = [
    *MODEL_CASES,
    ("healnet", dict(TOY_HPARAMS["healnet"], linear_modalities=["cnv"])),
    ("healnet", dict(EXTRA_CASES[0][1], linear_modalities=["cnv"])),
]


@pytest.mark.parametrize(("name", "hp"), CASES, ids=[f"{n}{i}" for i, (n, _) in enumerate(CASES)])
def test_declared_answer_is_the_probe_answer(name, hp, toy):
    mods = _modalities(name)
    if not _compatible(name, mods):
        pytest.skip(f"{name} does not take {'/'.join(mods)} alone")
    declared = {**hp, "linear_modalities": hp.get("linear_modalities", [])} if name == "healnet" else hp
    model = _model(name, declared, mods, toy)
    probed = nothing_to_draw(_run(name, declared, mods), _Probe(model, name, mods, toy))
    known = known_nothing_to_draw(_run(name, declared, mods))
    if known is None:  # per-feature tokens: only the probe can tell, and it finds weights
        assert probed == ""
    else:
        assert known == probed and known.startswith("nothing to draw")


def test_a_run_with_slides_or_an_unknown_model_is_probed():
    assert known_nothing_to_draw(_run("ehpal", {}, ("wsi", "rna"))) is None
    assert known_nothing_to_draw(_run("my-plugin", {}, OMICS)) is None
    assert known_nothing_to_draw(_run("healnet", {}, OMICS)) is None  # linear_modalities unknown: probe
