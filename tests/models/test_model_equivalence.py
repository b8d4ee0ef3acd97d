"""Today's models give the outputs and gradients of the implementation of commit 7c22ef4.

``data/legacy_outputs.pt`` (see ``legacy_fixture.py``) holds that implementation's logits, weight
maps and parameter gradients on fixed batches, with parameters rebuilt from its state-dict layout.
EHPAL's fused layout loads such state dicts through its conversion hook; the gradients are compared
in the old layout by differentiating through the conversion.
"""

from __future__ import annotations

import pytest
import torch
from legacy_fixture import CASES, FIXTURE, grad_summary, make_batch, probe_of, recipe_state_dict, specs_of, unpack

from healnet_cli.models import create_model

REFERENCE = torch.load(FIXTURE, weights_only=True)
TOL = dict(atol=1e-9, rtol=1e-7)


def _upgrade(model, state):
    from healnet_cli.models.ehpal_legacy import upgrade_state_dict

    return upgrade_state_dict(model, state) if model.name == "ehpal" else dict(state)


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_and_gradients_match_the_previous_implementation(case):
    ref = REFERENCE[case]
    seed = list(CASES).index(case)
    model = create_model(ref["model"], specs_of(ref["modalities"]), 4, **ref["hparams"]).eval().double()
    old = {k: v.requires_grad_() for k, v in recipe_state_dict(ref["shapes"], seed).items()}
    batch = make_batch(tuple(ref["modalities"]), seed)
    out = torch.func.functional_call(model, _upgrade(model, old), (batch,), {"return_weights": True})
    torch.testing.assert_close(out.logits, ref["logits"], **TOL)
    assert set(out.weights) == set(ref["weights"])
    for key, value in ref["weights"].items():
        got = out.weights[key]
        if key == "pool" and got.shape[-1] > value.shape[-1]:  # the shared stream now always spans the null tokens
            assert torch.all(got[:, value.shape[-1] :] == 0)
            got = got[:, : value.shape[-1]]
        torch.testing.assert_close(got, value, **TOL, msg=f"weights[{key!r}]")
    (out.logits * probe_of(seed, out.logits.shape)).sum().backward()
    expected = unpack(ref["grads"])
    got = {k: grad_summary(k, v.grad, seed) for k, v in old.items() if v.grad is not None}
    for key in set(got) | set(expected):  # a parameter that did not take part has no gradient, or a zero one
        zero = torch.zeros_like(got.get(key, expected.get(key)))
        torch.testing.assert_close(got.get(key, zero), expected.get(key, zero), **TOL, msg=f"grad of {key}")


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("ehpal")])
def test_old_ehpal_state_dicts_load_into_the_fused_layout(case):
    ref = REFERENCE[case]
    seed = list(CASES).index(case)
    model = create_model("ehpal", specs_of(ref["modalities"]), 4, **ref["hparams"]).eval().double()
    model.load_state_dict(recipe_state_dict(ref["shapes"], seed), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(make_batch(tuple(ref["modalities"]), seed)).logits, ref["logits"], **TOL)
    model.load_state_dict(model.state_dict(), strict=True)  # today's layout passes through the hook


def test_an_old_ehpal_checkpoint_loads_through_model_from_checkpoint():
    from healnet_cli.models import model_from_checkpoint

    case = "ehpal_R_all"
    ref, seed = REFERENCE[case], list(CASES).index(case)
    modalities = {m: {"kind": s.kind, "dim": s.dim} for m, s in specs_of(ref["modalities"]).items()}
    ckpt = {
        "name": "ehpal",
        "config": {"modalities": modalities, "n_bins": 4, "hparams": ref["hparams"]},
        "state_dict": recipe_state_dict(ref["shapes"], seed),
    }
    model = model_from_checkpoint(ckpt).eval().double()  # built in float32: the weights were rounded
    with torch.no_grad():
        logits = model(make_batch(tuple(ref["modalities"]), seed)).logits
    torch.testing.assert_close(logits, ref["logits"], atol=1e-5, rtol=1e-4)
