"""Every registered model compiles with ``torch.compile`` as one graph (no graph break in its forward).

``torch._dynamo.explain`` traces the forward of one small configuration per model (and per EHPAL
variant) and counts the graph breaks; the ``aot_eager`` backend then runs the compiled forward and
backward (AOTAutograd, no code generation) and must give the eager outputs.
"""

from __future__ import annotations

import pytest
import torch
from test_model_contract import N_BINS, N_TOKENS, TOY_HPARAMS, _model, _presence

COMPILE_CASES = [
    ("healnet", TOY_HPARAMS["healnet"], ("wsi", "rna")),
    ("ehpal", TOY_HPARAMS["ehpal"], ("wsi", "rna")),
    ("ehpal", dict(TOY_HPARAMS["ehpal"], variant="F", norm="layer", segment_weights="shared"), ("rna", "cnv")),
    ("ehpal", dict(TOY_HPARAMS["ehpal"], activation_checkpointing=True), ("rna",)),
    ("abmil", TOY_HPARAMS["abmil"], ("wsi", "rna")),
    ("snn", TOY_HPARAMS["snn"], ("rna", "cnv")),
    ("concat", TOY_HPARAMS["concat"], ("wsi", "rna")),
    ("late", TOY_HPARAMS["late"], ("wsi", "rna")),
    ("coxnet", TOY_HPARAMS["coxnet"], ("rna", "cnv")),
    ("cox-clinical", TOY_HPARAMS["cox-clinical"], ("clinical",)),
]
IDS = [f"{name}{i}-{'+'.join(mods)}" for i, (name, _, mods) in enumerate(COMPILE_CASES)]


def test_every_registered_model_has_a_compile_case():
    from healnet_cli.models import list_models

    assert {name for name, _, _ in COMPILE_CASES} == set(list_models())


@pytest.mark.parametrize(("name", "hp", "mods"), COMPILE_CASES, ids=IDS)
def test_forward_compiles_as_one_graph(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).train()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(batch)
    assert explanation.graph_break_count == 0, [str(r.reason) for r in explanation.break_reasons]
    assert explanation.graph_count == 1


@pytest.mark.parametrize(("name", "hp", "mods"), COMPILE_CASES[:2], ids=IDS[:2])
def test_compiled_forward_and_backward_match_eager(name, hp, mods, toy):
    model = _model(name, hp, mods, toy).eval()
    batch = toy.batch(toy.specs(mods), _presence(mods), N_TOKENS)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(batch).logits
    ref = model(batch).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert out.shape == (len(N_TOKENS), N_BINS)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()), allow_unused=True)
    ref_grads = torch.autograd.grad(ref.square().sum(), list(model.parameters()), allow_unused=True)
    for g, r in zip(grads, ref_grads, strict=True):
        if r is not None:
            torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)
