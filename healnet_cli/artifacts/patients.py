"""Patient identity: the one rule that maps a slide, sample or table identifier to its patient.

Every stage that relates slides, omics rows and labels to patients (``tile``, ``extract``,
``import-features``, ``omics``, ``cohort``, ``train``, ``predict``) goes through :func:`to_patient_id`,
so that a slide that ``healnet cohort`` shows as matched is also in the cohort ``healnet train``
builds. The presence rules (which rows and bags count as a patient *having* a modality) are
:func:`healnet_cli.artifacts.omics.present_patients` and :func:`slide_patient`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TCGA_PATIENT = re.compile(r"^(TCGA)[-._]([A-Z0-9]{2})[-._]([A-Z0-9]{4})(?=$|[-._])", re.IGNORECASE)


def to_patient_id(identifier: str) -> str:
    """The patient id of ``identifier``: TCGA barcodes (sample, aliquot, slide; ``-``, ``.`` or
    ``_`` separated, any case) are reduced to ``TCGA-XX-XXXX``; anything else is returned stripped.

    Examples
    --------
    >>> to_patient_id("TCGA-2F-A9KO-01Z-00-DX1.195576CF.svs")
    'TCGA-2F-A9KO'
    >>> to_patient_id("tcga.06.0174.01")
    'TCGA-06-0174'
    """
    text = str(identifier).strip()
    match = _TCGA_PATIENT.match(text)
    if match is None:
        return text
    return "-".join(part.upper() for part in match.groups())


def slide_patient(provenance: Mapping[str, Any]) -> str | None:
    """The patient whose WSI data a features file (its provenance) holds: its ``case_id`` (else its
    ``slide_id``) as a patient id; None for a slide without patches, which gives no WSI data."""
    if int(provenance.get("n_patches", 1) or 0) == 0:
        return None
    return to_patient_id(str(provenance.get("case_id") or provenance["slide_id"]))
