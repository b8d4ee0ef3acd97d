"""Figures as PNG bytes (matplotlib's Agg canvas; no pyplot, no global backend state)."""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from healnet_cli.stages.evaluate.curves import Calibration, RiskGroups

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.9 (pinned: requirements/constraints.txt)

COLORS = ["#1b7837", "#e08214", "#b2182b", "#2166ac", "#762a83", "#4d4d4d"]
DPI = 144
#: Every figure is this wide (inches): the report shows it at the column's width, 380 px on a
#: 400-px phone, so a font of ``MIN_FONT_PT`` points appears at ``MIN_FONT_PT * 380 / (72 * FIG_WIDTH)``
#: ≈ 10.6 px there (matplotlib's 8-pt legends on 6.4-in figures came out at 6 px).
FIG_WIDTH = 5.0
MIN_FONT_PT = 10
PHONE_COLUMN_PX = 380
STYLE: dict[RcKeyType, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "figure.titlesize": 12,
}
SMALL = MIN_FONT_PT


def _styled(func: Any) -> Any:
    """Draw (and render) the figure under :data:`STYLE` (a temporary rc context, no global state)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib as mpl

        with mpl.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def _figure(height_in: float = 3.8) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIG_WIDTH, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


@_styled
def km_figure(groups: RiskGroups, *, time_unit: str) -> bytes:
    """KM curves per risk group, log-rank p in the title and the numbers at risk below."""
    fig = _figure(4.6)
    ax, table = fig.subplots(2, 1, height_ratios=[4, 1.1], sharex=True)
    for g, (name, (t, s)) in enumerate(zip(groups.names, groups.curves, strict=True)):
        if t:
            ax.step(t, s, where="post", color=COLORS[g % len(COLORS)], label=f"{name} risk (n={groups.sizes[g]})")
    title = "Kaplan–Meier by predicted risk group"
    title += (
        f"\nlog-rank p = {groups.p_value:.2g}" if groups.p_value is not None else f"\nlog-rank: n/a ({groups.reason})"
    )
    ax.set(title=title, ylabel="survival probability", ylim=(-0.02, 1.02))
    ax.legend(loc="lower left", fontsize=SMALL, frameon=False)
    ax.grid(alpha=0.3)
    table.set_ylim(-0.5, len(groups.names) - 0.5)
    table.set_yticks(range(len(groups.names)), labels=groups.names[::-1], fontsize=SMALL)
    for row, counts in enumerate(groups.at_risk[::-1]):
        for at, c in zip(groups.at_times, counts, strict=True):
            table.text(at, row, str(c), ha="center", va="center", fontsize=SMALL)
    table.set_xlabel(f"time ({time_unit}) — numbers at risk")
    table.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        table.spines[side].set_visible(False)
    return to_png(fig)


@_styled
def calibration_figure(cal: Calibration, *, time_unit: str) -> bytes:
    """Mean predicted vs KM observed survival per predicted-survival group, one colour per time."""
    fig = _figure(4.6)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    times = sorted({r["time"] for r in cal.rows})
    for i, t in enumerate(times):
        rows = [r for r in cal.rows if r["time"] == t and r["observed"] is not None]
        ax.plot(
            [r["predicted"] for r in rows],
            [r["observed"] for r in rows],
            "o-",
            color=COLORS[i % len(COLORS)],
            label=f"t = {t:.3g} {time_unit}",
        )
    ax.set(
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        xlabel="predicted survival (group mean)",
        ylabel="observed survival (KM)",
        title="Calibration at chosen times",
    )
    ax.legend(fontsize=SMALL, frameon=False)
    ax.grid(alpha=0.3)
    return to_png(fig)


@_styled
def curve_figure(
    curves: Mapping[str, Mapping[str, Sequence[float]] | None],
    *,
    key: str,
    ylabel: str,
    title: str,
    time_unit: str,
    reference: float | None = None,
) -> bytes:
    """One line per fold (thin) and the pooled curve (thick) of ``curves[name][key]`` over time."""
    fig = _figure(3.8)
    ax = fig.subplots()
    for i, (name, curve) in enumerate(curves.items()):
        if not curve:
            continue
        pooled = name == "pooled"
        ax.plot(
            curve["times"],
            curve[key],
            marker="." if not pooled else "o",
            lw=2.5 if pooled else 1,
            alpha=1 if pooled else 0.6,
            color="black" if pooled else COLORS[i % len(COLORS)],
            label=name,
        )
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1)
    ax.set(xlabel=f"time ({time_unit})", ylabel=ylabel, title=title)
    ax.legend(fontsize=SMALL, frameon=False, ncols=2)
    ax.grid(alpha=0.3)
    return to_png(fig)


@_styled
def ablation_figure(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Bars of the c-index per ablation condition (mean ± sd over folds, pooled as a dot)."""
    fig = _figure(4.0)
    ax = fig.subplots()
    names = [f"{r['condition']}\n(n={r['n_changed']})" if "n_changed" in r else r["condition"] for r in rows]
    mean = np.array([np.nan if r["mean"] is None else r["mean"] for r in rows], dtype=float)
    sd = np.array([0.0 if r["sd"] is None else r["sd"] for r in rows], dtype=float)
    x = np.arange(len(rows))
    ax.bar(
        x, np.nan_to_num(mean, nan=0.0), yerr=sd, color=COLORS[3], alpha=0.8, capsize=4, label="mean ± sd over folds"
    )
    pooled = [np.nan if r.get("pooled") is None else r["pooled"] for r in rows]
    ax.plot(x, pooled, "o", color="black", label="pooled")
    for xi, m in zip(x, mean, strict=True):
        ax.text(
            xi, 0.02, "n/a" if np.isnan(m) else f"{m:.3f}", ha="center", color="white" if not np.isnan(m) else "black"
        )
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, labels=names, rotation=20, ha="right")
    ax.set(ylim=(0, 1), ylabel="Harrell's c-index", title="Missing modalities at inference")
    ax.legend(fontsize=SMALL, frameon=False, loc="upper right")
    return to_png(fig)


def _grid_step(coords: np.ndarray, fallback: float) -> float:
    """The patch grid's step in level-0 px (smallest non-zero coordinate difference)."""
    diffs = [np.diff(np.unique(coords[:, a])) for a in (0, 1)]
    steps = np.concatenate([d[d > 0] for d in diffs])
    return float(steps.min()) if steps.size else float(fallback)


def weight_grid(coords: np.ndarray, weights: np.ndarray, *, step: float) -> tuple[np.ndarray, float, float]:
    """Rasterise per-patch weights onto the patch grid: ``([ny, nx] with NaN where no patch, x0, y0)``.

    Patches falling into the same cell keep the largest weight.
    """
    x0, y0 = coords[:, 0].min(), coords[:, 1].min()
    ix = np.rint((coords[:, 0] - x0) / step).astype(int)
    iy = np.rint((coords[:, 1] - y0) / step).astype(int)
    grid = np.full((iy.max() + 1, ix.max() + 1), np.nan)
    order = np.argsort(weights)  # larger weights written last win
    grid[iy[order], ix[order]] = np.asarray(weights, dtype=float)[order]
    return grid, float(x0), float(y0)


@_styled
def heatmap_figure(
    coords: np.ndarray,
    weights: np.ndarray,
    *,
    patch_px_level0: float,
    thumbnail: np.ndarray | None,
    downsample: float | None,
    title: str,
) -> bytes:
    """Per-patch attention over the slide thumbnail (or a blank canvas from the coordinates), drawn as
    one raster on the patch grid (fast for bags of 10^4–10^5 patches)."""
    import matplotlib as mpl

    coords = np.asarray(coords, dtype=float)
    w = np.asarray(weights, dtype=float)
    step = _grid_step(coords, patch_px_level0)
    grid, x0, y0 = weight_grid(coords, w, step=step)
    scale = 1.0 / downsample if thumbnail is not None and downsample else 1.0
    fig = _figure(4.6)
    ax = fig.subplots()
    if thumbnail is not None:
        ax.imshow(thumbnail, extent=(0, thumbnail.shape[1], thumbnail.shape[0], 0))
    extent = (x0 * scale, (x0 + grid.shape[1] * step) * scale, (y0 + grid.shape[0] * step) * scale, y0 * scale)
    cmap = mpl.colormaps["inferno"]
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        alpha=0.55,
        extent=extent,
        interpolation="nearest",
        vmin=float(w.min()),
        vmax=float(w.max()) if w.max() > w.min() else float(w.min()) + 1e-12,
    )
    if thumbnail is None:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=SMALL)
    ax.axis("off")
    fig.colorbar(image, ax=ax, shrink=0.7, label="attention weight")
    return to_png(fig)


@_styled
def top_features_figure(names: Sequence[str], values: Sequence[float], *, title: str) -> bytes:
    """Horizontal bars of the top-weighted omics features."""
    fig = _figure(max(2.6, 0.3 * len(names) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=COLORS[0])
    ax.set_yticks(y, labels=list(names), fontsize=SMALL)
    ax.set(xlabel="mean attention weight", title=title)
    return to_png(fig)
