"""The training loop: gradient accumulation, early stopping with best weights, penalised params."""

from __future__ import annotations

import numpy as np
import torch

from healnet_cli.data.batching import PatientTable
from healnet_cli.models import ModalitySpec, create_model
from healnet_cli.stages.train.loop import (
    LoopSettings,
    Targets,
    evaluate,
    lr_at,
    make_optimizer,
    penalised_parameters,
    step_groups,
    train_fold,
)
from healnet_cli.stages.train.losses import cox_loss, nll_loss


def _table(n: int, f: int, seed: int) -> tuple[PatientTable, Targets]:
    rng = np.random.default_rng(seed)
    table = PatientTable(
        [f"P{i}" for i in range(n)],
        ["rna"],
        {"rna": rng.normal(size=(n, f)).astype(np.float32)},
        {"rna": np.ones(n, bool)},
    )
    time = rng.exponential(10, n) + 0.1
    return table, Targets(time, rng.random(n) < 0.6, rng.integers(0, 4, n))


def _settings(**kw) -> LoopSettings:
    base = dict(
        epochs=1,
        lr=1e-2,
        weight_decay=0.0,
        warmup_epochs=0,
        patience=50,
        l1=0.0,
        alpha=0.0,
        loss="nll",
        batch_size=4,
        grad_accum=1,
        modality_dropout=0.0,
        max_patches=None,
        seed=0,
        fold=0,
        device=torch.device("cpu"),
    )
    return LoopSettings(**{**base, **kw})


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("snn", {"rna": ModalitySpec("vector", 5)}, 4, dropout=0.0, hidden_dim=8)


def test_gradient_accumulation_equals_a_larger_batch() -> None:
    table, y = _table(8, 5, 0)
    empty, ey = _table(0, 5, 1)
    a, hist_a = train_fold(_model(), table, y, empty, ey, _settings(batch_size=4, grad_accum=2, l1=1e-3))
    b, hist_b = train_fold(_model(), table, y, empty, ey, _settings(batch_size=8, grad_accum=1, l1=1e-3))
    assert abs(hist_a[0]["train_loss"] - hist_b[0]["train_loss"]) < 1e-6
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_remainder_batches_are_stepped() -> None:
    assert [list(g) for g in step_groups(5, 2)] == [[0, 1], [2, 3], [4]]
    assert lr_at(0, 10, 2, 1.0) == 0.5 and lr_at(2, 10, 2, 1.0) == 1.0 and lr_at(10, 10, 2, 1.0) < 1e-12


def test_early_stopping_restores_the_best_weights() -> None:
    table, y = _table(24, 5, 2)
    val, vy = _table(24, 5, 3)  # unrelated labels: validation loss worsens as the model overfits
    s = _settings(epochs=12, lr=5e-2, batch_size=8)
    model, hist = train_fold(_model(), table, y, val, vy, s)
    losses = [h["val_loss"] for h in hist]
    best = int(np.argmin(losses))
    assert best < len(hist) - 1, "the scenario must overfit for the test to mean anything"
    restored, _ = evaluate(model, val, vy, s)
    assert abs(restored - losses[best]) < 1e-5
    assert abs(restored - losses[-1]) > 1e-4


def test_patience_stops_training() -> None:
    table, y = _table(24, 5, 2)
    val, vy = _table(24, 5, 3)
    _, hist = train_fold(_model(), table, y, val, vy, _settings(epochs=40, lr=5e-2, batch_size=8, patience=3))
    assert len(hist) < 40


def test_penalised_parameters_are_layer_weights_only() -> None:
    model = create_model("healnet", {"rna": ModalitySpec("vector", 5)}, 4, depth=1, num_latents=4, latent_dim=8)
    chosen = {id(p) for p in penalised_parameters(model)}
    names = {n for n, p in model.named_parameters() if id(p) in chosen}
    assert names and all(n.endswith("weight") for n in names)
    assert "latents" not in names and not any("norm" in n for n in names)


def test_the_optimizer_is_fused_adamw_with_decay_on_layer_weights_only() -> None:
    model = create_model("healnet", {"rna": ModalitySpec("vector", 5)}, 4, depth=1, num_latents=4, latent_dim=8)
    opt = make_optimizer(model, 1e-3, 0.1)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]  # one kernel per group, not ~10 ops per tensor
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert decayed == {id(p) for p in penalised_parameters(model)}


def test_losses_match_hand_computation() -> None:
    logits = torch.tensor([[0.0, 1.0, -1.0]])
    h = torch.sigmoid(logits)[0]
    # event in bin 1: -log(1-h0) - log h1 ; censored in bin 1: -log(1-h0) - log(1-h1)
    ev = nll_loss(logits, torch.tensor([1]), torch.tensor([True]))
    ce = nll_loss(logits, torch.tensor([1]), torch.tensor([False]))
    torch.testing.assert_close(ev, -(torch.log(1 - h[0]) + torch.log(h[1])).reshape(1))
    torch.testing.assert_close(ce, -(torch.log(1 - h[0]) + torch.log(1 - h[1])).reshape(1))
    r = torch.tensor([[0.5], [0.0], [-0.5]])
    t = torch.tensor([1.0, 2.0, 3.0])
    e = torch.tensor([True, False, True])
    terms = cox_loss(r, t, e)
    expected0 = -(0.5 - torch.logsumexp(r[:, 0], 0))
    torch.testing.assert_close(terms[0], expected0)
    assert terms[1] == 0 and abs(float(terms[2])) < 1e-6
