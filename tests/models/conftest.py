"""Toy-size factories for the model contract tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from healnet_cli.models import ModalityInput, ModalitySpec

TOY_DIMS = {"wsi": 12, "rna": 20, "cnv": 10, "mut": 7, "clinical": 4}


def toy_specs(names: tuple[str, ...]) -> dict[str, ModalitySpec]:
    """Toy modality specs; ``wsi`` is a bag, the others are vectors."""
    return {n: ModalitySpec("bag" if n == "wsi" else "vector", TOY_DIMS[n]) for n in names}


def build_batch(
    specs: dict[str, ModalitySpec],
    present: dict[str, list[bool]],
    n_tokens: list[int],
    seed: int = 0,
    pad_to: int | None = None,
) -> dict[str, ModalityInput]:
    """A batch whose bag samples have ``n_tokens[i]`` valid tokens, padded at the end.

    Coordinates sit on a 256-px grid; padding carries random junk to prove it is ignored.
    """
    gen = torch.Generator().manual_seed(seed)
    batch_size = len(n_tokens)
    n_max = pad_to or max(n_tokens)
    batch = {}
    for name, spec in specs.items():
        pres = torch.tensor(present[name], dtype=torch.bool)
        if spec.kind == "bag":
            data = torch.randn(batch_size, n_max, spec.dim, generator=gen)
            mask = torch.arange(n_max).unsqueeze(0) < torch.tensor(n_tokens).unsqueeze(1)
            coords = torch.randint(0, 9, (batch_size, n_max, 2), generator=gen).float() * 256.0
            batch[name] = ModalityInput(data, pres, mask, coords)
        else:
            batch[name] = ModalityInput(torch.randn(batch_size, spec.dim, generator=gen), pres)
    return batch


@pytest.fixture(autouse=True)
def _one_thread():
    """Toy tensors gain nothing from threads, and oversubscribed CPUs slow them down a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def toy() -> Callable:
    """Access to the factories: ``toy.specs(...)`` and ``toy.batch(...)``."""

    class _Toy:
        specs = staticmethod(toy_specs)
        batch = staticmethod(build_batch)

    return _Toy
