"""Slide pixels for the demo cohort, composed from real pathology pixels.

The source is the immunohistochemistry image that ships with scikit-image
(``skimage.data.immunohistochemistry()``, 512 × 512 RGB: haematoxylin-stained nuclei and
DAB-brown tumour glands). Random crops of it are sorted by their DAB (brown) content into a
*tumour* set (DAB-rich glands) and a *stroma* set (pale, haematoxylin-blue nuclei), then pasted
as tissue islands on a white background. The share of tumour crops on a slide is the slide's
risk-related pattern: a pathologist sees it at a glance, and a colour/texture extractor measures
it patch by patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Off-white glass background (RGB) with a little noise added per pixel.
BACKGROUND_RGB = (242, 241, 239)


@dataclass(frozen=True)
class PatchLibrary:
    """Crops of the scikit-image IHC picture, split by DAB content.

    Attributes
    ----------
    tumour, stroma
        ``[n, tile_px, tile_px, 3]`` uint8 crops (DAB-rich / DAB-poor).
    tile_px
        Crop side in pixels (level 0 of the demo slides).
    """

    tumour: np.ndarray
    stroma: np.ndarray
    tile_px: int


def load_patch_library(*, tile_px: int = 128, n_crops: int = 240, seed: int = 0) -> PatchLibrary:
    """Cut ``n_crops`` random, randomly rotated/flipped crops and keep the DAB-richest and
    DAB-poorest thirds (crops that are mostly empty glass are dropped).

    Parameters
    ----------
    tile_px
        Crop side in pixels (≤ 512).
    n_crops
        Number of random crops to draw before sorting.
    seed
        Seed of the crop positions and orientations.

    Returns
    -------
    PatchLibrary
    """
    from skimage import data
    from skimage.color import rgb2hed

    image = data.immunohistochemistry()
    if not 16 <= tile_px <= min(image.shape[:2]):
        raise ValueError(f"tile_px must be within 16..{min(image.shape[:2])}, got {tile_px}")
    dab = rgb2hed(image)[..., 2]
    rng = np.random.default_rng(seed)
    crops, scores = [], []
    for _ in range(n_crops):
        y = int(rng.integers(0, image.shape[0] - tile_px + 1))
        x = int(rng.integers(0, image.shape[1] - tile_px + 1))
        crop = image[y : y + tile_px, x : x + tile_px]
        if (crop.min(axis=2) > 215).mean() > 0.3:  # mostly empty glass (the lumen on the left)
            continue
        k = int(rng.integers(0, 4))
        crop = np.rot90(crop, k)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(np.ascontiguousarray(crop))
        scores.append(float(dab[y : y + tile_px, x : x + tile_px].mean()))
    order = np.argsort(scores)
    third = len(order) // 3
    stack = np.stack(crops)
    return PatchLibrary(tumour=stack[order[-third:]], stroma=stack[order[:third]], tile_px=tile_px)


def island_mask(height_px: int, width_px: int, rng: np.random.Generator, *, n_islands: int = 3) -> np.ndarray:
    """A boolean mask of ``n_islands`` irregular, blob-shaped tissue islands.

    Each island is an ellipse whose radius is modulated by a few low-frequency sine waves, so
    the outline looks like tissue, not like a geometric shape.
    """
    step = 4  # the outline is drawn at 1/4 resolution (2 µm at 0.5 µm/px), then upsampled
    yy, xx = (np.mgrid[0 : -(-height_px // step), 0 : -(-width_px // step)].astype(np.float32) + 0.5) * step
    mask = np.zeros(yy.shape, dtype=bool)
    short = min(height_px, width_px)
    for _ in range(n_islands):
        cy = rng.uniform(0.25, 0.75) * height_px
        cx = rng.uniform(0.2, 0.8) * width_px
        ry, rx = rng.uniform(0.18, 0.32, size=2) * short
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
        theta = np.arctan2(v, u)
        wobble = 1.0
        for freq in (2, 3, 5):
            wobble = wobble + rng.uniform(0.03, 0.09) * np.sin(freq * theta + rng.uniform(0, 2 * np.pi))
        mask |= np.hypot(u, v) <= wobble
    return mask.repeat(step, axis=0).repeat(step, axis=1)[:height_px, :width_px]


def compose_slide(
    library: PatchLibrary,
    *,
    height_px: int,
    width_px: int,
    tumour_fraction: float,
    rng: np.random.Generator,
    n_islands: int = 3,
) -> np.ndarray:
    """Level-0 RGB pixels of one demo slide.

    Parameters
    ----------
    library
        Crops to paste (see :func:`load_patch_library`).
    height_px, width_px
        Slide size at level 0.
    tumour_fraction
        Probability that a tissue cell receives a DAB-rich tumour crop (else a stroma crop).
    rng
        Random generator (the layout and the crop choices).
    n_islands
        Number of tissue islands.

    Returns
    -------
    numpy.ndarray
        ``[height_px, width_px, 3]`` uint8.
    """
    if not 0.0 <= tumour_fraction <= 1.0:
        raise ValueError(f"tumour_fraction must be within [0, 1], got {tumour_fraction}")
    t = library.tile_px
    noise = rng.normal(0.0, 1.5, size=(height_px, width_px, 1))
    canvas = np.clip(np.asarray(BACKGROUND_RGB, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    mask = island_mask(height_px, width_px, rng, n_islands=n_islands)
    tissue = np.empty_like(canvas)
    for y in range(0, height_px, t):
        for x in range(0, width_px, t):
            h, w = min(t, height_px - y), min(t, width_px - x)
            if not mask[y : y + h, x : x + w].any():
                continue
            pool = library.tumour if rng.random() < tumour_fraction else library.stroma
            crop = pool[int(rng.integers(0, len(pool)))]
            tissue[y : y + h, x : x + w] = crop[:h, :w]
    canvas[mask] = tissue[mask]
    return canvas


def tumour_share(pixels: np.ndarray) -> float:
    """Fraction of tissue pixels that are DAB-positive (brown), a read-out of the planted pattern.

    Tissue = pixels darker than the glass; DAB-positive = DAB optical density above 0.08.
    """
    from skimage.color import rgb2hed

    tissue = pixels.min(axis=2) < 220
    if not tissue.any():
        return 0.0
    dab = rgb2hed(pixels)[..., 2]
    return float((dab[tissue] > 0.08).mean())
