"""Read EHPAL state dicts written before the fused layout (healnet up to commit 7c22ef4).

The old layout kept one ``Conv1d`` per branch and one norm per branch; the fused layout stacks the
branches that read the same input (see :mod:`ehpal_blocks`). The conversion only concatenates,
stacks and zero-pads tensors, so outputs are unchanged (tested against the old implementation's
outputs in ``tests/models/test_model_equivalence.py``) and gradients flow back through it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["upgrade_state_dict"]


def _take(state: dict, prefix: str, *names: str) -> list[torch.Tensor]:
    return [state.pop(prefix + name) for name in names]


def _mhcf(state: dict, p: str, extra: list[torch.Tensor] | None = None) -> None:
    """Old MHCF keys (pw, dw3, dw5, short and their norms) -> point, depth, norm; ``extra`` is the
    enclosing RGSA's shortcut (weight, bias, norm weight, norm bias)."""
    pw_w, pw_b, sh_w, sh_b = _take(state, p, "pw.weight", "pw.bias", "short.weight", "short.bias")
    d3_w, d3_b, d5_w, d5_b = _take(state, p, "dw3.weight", "dw3.bias", "dw5.weight", "dw5.bias")
    norms = {k: _take(state, p, f"{k}_norm.weight", f"{k}_norm.bias") for k in ("pw", "short", "dw3", "dw5")}
    point_w, point_b = [pw_w, sh_w], [pw_b, sh_b]
    norm_w, norm_b = [norms["pw"][0], norms["short"][0]], [norms["pw"][1], norms["short"][1]]
    if extra is not None:
        point_w.append(extra[0])
        point_b.append(extra[1])
        norm_w.append(extra[2])
        norm_b.append(extra[3])
    state[p + "point.weight"], state[p + "point.bias"] = torch.cat(point_w), torch.cat(point_b)
    state[p + "depth.weight"] = torch.cat([F.pad(d3_w, (1, 1)), d5_w])
    state[p + "depth.bias"] = torch.cat([d3_b, d5_b])
    state[p + "norm.weight"] = torch.cat(norm_w + [norms["dw3"][0], norms["dw5"][0]])
    state[p + "norm.bias"] = torch.cat(norm_b + [norms["dw3"][1], norms["dw5"][1]])


def _dilate(w: torch.Tensor) -> torch.Tensor:
    """``[c, 1, 3]`` dilation-2 filter -> the same filter as 5 taps ``[w0, 0, w1, 0, w2]``."""
    zero = torch.zeros_like(w[..., 0])
    return torch.stack([w[..., 0], zero, w[..., 1], zero, w[..., 2]], dim=-1)


def _sir_block(state: dict, p: str) -> None:
    d3_w, d3_b, d5_w, d5_b, dl_w, dl_b = _take(
        state, p, "dw3.weight", "dw3.bias", "dw5.weight", "dw5.bias", "dil.weight", "dil.bias"
    )
    state[p + "depth.weight"] = torch.cat([F.pad(d3_w, (1, 1)), d5_w, _dilate(dl_w)])
    state[p + "depth.bias"] = torch.cat([d3_b, d5_b, dl_b])
    for new, parts in (("down", ("down", "short_down")), ("norm", ("norm", "short_norm"))):
        for leaf in ("weight", "bias"):
            state[f"{p}{new}.{leaf}"] = torch.cat(_take(state, p, *(f"{k}.{leaf}" for k in parts)))


def _fusion_r(state: dict, p: str) -> None:
    ns_w, ns_b, nx_w, nx_b = _take(state, p, "norm_s.weight", "norm_s.bias", "norm_x.weight", "norm_x.bias")
    state[p + "norm_weight"] = torch.stack([ns_w, nx_w]).unsqueeze(1)
    state[p + "norm_bias"] = torch.stack([ns_b, nx_b]).unsqueeze(1)
    state[p + "reim.weight"] = torch.cat(_take(state, p, "w_re.weight", "w_im.weight"))
    state[p + "scalars"] = torch.stack(_take(state, p, "log_temperature", "kappa_raw", "gamma0", "gamma1"))
    state[p + "w"] = torch.stack(_take(state, p, "w_s", "w_x")).unsqueeze(2)


def _fusion_f(state: dict, p: str) -> None:
    state[p + "reim.weight"] = torch.cat(_take(state, p, "w_re.weight", "w_im.weight"))
    theta, alpha, gammas = _take(state, p, "theta", "alpha", "gammas")
    state[p + "scalars"] = torch.cat([theta.reshape(1), alpha.reshape(1), gammas])
    state[p + "vectors"] = torch.stack(_take(state, p, "h", "fractal", "w_c", "w_o"))


def upgrade_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], prefix: str = "") -> dict:
    """``state`` in ``model``'s (fused) layout; keys already in that layout pass through unchanged.

    Parameters
    ----------
    model : EHPAL
        The model the state is for (its modules say where each block's keys live).
    state : mapping of str to tensor
        A state dict of ``model`` (under ``prefix``), in the old or the fused layout.
    """
    from healnet_cli.models.ehpal_blocks import MHCF, RGSA, SIRBlock
    from healnet_cli.models.ehpal_fusion import FusionF, FusionR

    out = dict(state)
    for name, module in model.named_modules():
        p = prefix + (f"{name}." if name else "")
        if isinstance(module, RGSA) and p + "short.weight" in out:
            extra = _take(out, p, "short.weight", "short.bias", "short_norm.weight", "short_norm.bias")
            _mhcf(out, p + "m1.", extra)
        elif isinstance(module, MHCF) and p + "pw.weight" in out:
            _mhcf(out, p)
        elif isinstance(module, SIRBlock) and p + "dw3.weight" in out:
            _sir_block(out, p)
        elif isinstance(module, FusionR) and p + "w_re.weight" in out:
            _fusion_r(out, p)
        elif isinstance(module, FusionF) and p + "w_re.weight" in out:
            _fusion_f(out, p)
    return out
