"""Relabel an input label volume into the output convention (organs and their tumors)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tumorsynth.io.label_maps import LabelMap

__all__ = ["to_output_labels"]


def to_output_labels(
    label: np.ndarray, label_map: LabelMap, output_labels: LabelMap, organs: Sequence[str] = ()
) -> np.ndarray:
    """Relabel ``label`` into the output convention (organs and their tumors; the rest -> 0).

    A generic map (MSD: 1 organ, 2 tumor) is read as the first of ``organs``.

    Examples
    --------
    >>> from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
    >>> lits = resolve_label_map({"organ": 1, "tumor": 2})
    >>> to_output_labels(np.array([[[0, 1, 2]]]), lits, OUTPUT_LABELS, ["kidney"]).tolist()
    [[[0, 5, 6]]]
    """
    pairs: dict[int, int] = {}
    for name, out_ids in (*output_labels.organs.items(), *output_labels.tumors.items()):
        in_ids = label_map.organs.get(name) or label_map.tumors.get(name) or ()
        for in_id in in_ids:
            pairs.setdefault(in_id, out_ids[0])
    if organs and (label_map.generic_organ or label_map.generic_tumor):
        main = organs[0]
        for in_id in label_map.generic_organ:
            pairs.setdefault(in_id, output_labels.id_of(main))
        for in_id in label_map.generic_tumor:
            pairs.setdefault(in_id, output_labels.id_of(f"{main}_tumor"))
    out = np.zeros_like(label, dtype=np.uint8)  # keeps the memory order (nibabel: Fortran)
    for in_id, out_id in pairs.items():
        hit = label == in_id
        if hit.any():
            out[hit] = out_id
    return out
