"""Shape statistics of real tumors against the heuristic generator's shapes (issue 10).

Real: the 29 liver tumors of ``ircad_tumor_masks`` (label 2) and the KiTS23 kidney tumors of
``kits23_masks`` (label 2), 26-connected components at native spacing. Synthetic: shapes drawn by
:class:`~tumorsynth.shapes.RandomTumorShape` in IRCAD 1.7's liver / kidney (draw only, nothing
occupied) and rendered at 1.7's native spacing (0.78 x 0.78 x 1.6 mm) with ``distance < 0``.

Per component: volume (mL), sphericity ``pi^(1/3) (6 V)^(2/3) / A`` (marching-cubes surface and
volume), solidity (mesh volume / convex-hull volume), elongation ``sqrt(l2 / l1)`` and flatness
``sqrt(l3 / l1)`` of the voxel coordinates' PCA. Size classes by equivalent radius: tiny < 6 mm,
small 6-12, medium 12-24, large >= 24 mm.

Then a classifier two-sample test per organ on the four shape statistics (tumors with an
equivalent radius of at least 6 mm; real tumors grouped by patient, synthetic ones each alone):
how well logistic regression and a random forest tell real shapes from synthetic ones.

Usage: .venv/bin/python benchmarks/shape_calibration.py [--data ../shared/data] [--n 40]
Prints markdown tables (median [IQR] per class and source; C2ST AUC per organ and source).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = (("tiny", 0.0, 6.0), ("small", 6.0, 12.0), ("medium", 12.0, 24.0), ("large", 24.0, 1e9))
STATS = ("sphericity", "solidity", "elongation", "flatness")


def measure(mask: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """Shape statistics of one binary component (bool array) at ``spacing`` (mm)."""
    from scipy.spatial import ConvexHull
    from skimage.measure import marching_cubes, mesh_surface_area

    padded = np.pad(mask, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, 0.5, spacing=spacing)
    area = mesh_surface_area(verts, faces)
    tri = verts[faces]
    mesh_volume = abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()))
    mesh_volume /= 6.0
    hull = ConvexHull(verts)
    coords = np.argwhere(mask) * np.asarray(spacing)
    eig = np.sort(np.linalg.eigvalsh(np.cov(coords.T)))[::-1] if len(coords) > 3 else np.ones(3)
    volume = float(mask.sum()) * float(np.prod(spacing))
    return {
        "volume_ml": volume / 1000.0,
        "radius_mm": float(np.cbrt(3 * volume / (4 * math.pi))),
        "sphericity": float(math.pi ** (1 / 3) * (6 * mesh_volume) ** (2 / 3) / area),
        "solidity": float(mesh_volume / hull.volume),
        "elongation": float(math.sqrt(max(eig[1], 0) / eig[0])),
        "flatness": float(math.sqrt(max(eig[2], 0) / eig[0])),
    }


def components(label: np.ndarray, tumor_id: int, min_voxels: int = 30) -> Iterator[np.ndarray]:
    import cc3d

    cc = cc3d.connected_components(np.asarray(label == tumor_id), connectivity=26)
    for sl, lab in zip(_slices(cc), range(1, int(cc.max()) + 1)):
        comp = cc[sl] == lab
        if comp.sum() >= min_voxels:
            yield comp


def _slices(cc: np.ndarray) -> list[tuple[slice, ...]]:
    from scipy import ndimage as ndi

    return [s for s in ndi.find_objects(cc) if s is not None]


def real_tumors(data: Path) -> list[tuple[str, dict[str, float]]]:
    import nibabel as nib

    out = []
    for path in sorted((data / "ircad_tumor_masks").glob("*_label.nii.gz")):
        meta = json.loads(
            path.with_name(path.name.replace("_label.nii.gz", "_meta.json")).read_text()
        )
        label = np.asarray(nib.load(path).dataobj)
        for comp in components(label, 2):
            stats = measure(comp, tuple(meta["spacing_mm"]))
            out.append(("liver", {**stats, "group": path.name.split("_label")[0]}))
    for path in sorted((data / "kits23_masks").glob("*.nii.gz")):
        img = nib.load(path)
        spacing = tuple(float(s) for s in img.header.get_zooms()[:3])
        label = np.asarray(img.dataobj)
        for comp in components(label, 2):
            stats = measure(comp, spacing)  # type: ignore[arg-type]
            out.append(("kidney", {**stats, "group": path.name.split("_seg")[0]}))
    return out


def synthetic_tumors(
    data: Path, n: int, rules: Callable[[object], object] | None = None
) -> list[tuple[str, dict[str, float]]]:
    """``n`` shapes per (organ, class) drawn in IRCAD 1.7 and rendered at its spacing."""
    from tumorsynth.io import load_image, load_label
    from tumorsynth.organs import get_profile
    from tumorsynth.organs.context import OrganContext
    from tumorsynth.shapes import RandomTumorShape, render_shape, shape_box

    ct = load_image(data / "ircadb01_p07" / "ircadb01_p07_ct.nii.gz")
    seg = load_label(data / "ircadb01_p07" / "ircadb01_p07_label.nii.gz")
    spacing = ct.spacing_mm
    out = []
    for organ, label_id in (("liver", 1), ("kidney", 5)):
        profile = get_profile(organ)
        if rules is not None:
            profile = rules(profile)  # type: ignore[assignment]
        context = OrganContext.build(ct.array, seg.array == label_id, spacing, profile)
        drawer = RandomTumorShape(profile)
        for size in ("tiny", "small", "medium", "large"):
            rng = np.random.default_rng(1000)
            for _ in range(n):
                try:
                    spec = drawer.draw(context, size, rng)  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001 - no room: skip this draw
                    continue
                box = shape_box(spec, spacing, (10**6,) * 3, 2.0)
                # a box around the centre not clipped by the scan's edge
                field = render_shape(spec, spacing, box)
                # the body, as the real tumors' components are measured (satellites apart)
                body = max(components(field.distance_mm < 0, 1), key=np.count_nonzero)
                out.append((organ, measure(body, spacing)))
    return out


def size_class(radius_mm: float) -> str:
    return next(name for name, lo, hi in CLASSES if lo <= radius_mm < hi)


def table(groups: dict[str, list[tuple[str, dict[str, float]]]]) -> str:
    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        return f"{med:.2f} [{q1:.2f}-{q3:.2f}]"

    rows = [
        "| organ | class | source | n | " + " | ".join(STATS) + " |",
        "|---|---|---|---|" + "---|" * len(STATS),
    ]
    for organ in ("liver", "kidney"):
        for name, _, _ in CLASSES:
            for source, items in groups.items():
                sel = [s for o, s in items if o == organ and size_class(s["radius_mm"]) == name]
                stats = " | ".join(cell([s[k] for s in sel]) for k in STATS)
                rows.append(f"| {organ} | {name} | {source} | {len(sel)} | {stats} |")
    return "\n".join(rows)


def c2st_table(groups: dict[str, list[tuple[str, dict]]]) -> str:
    """AUC [interval] and p of telling real shapes from each synthetic source, per organ."""
    from tumorsynth.realism.c2st import two_sample_test

    rows = [
        "| organ | synthetic | n real / synthetic | logistic | forest |",
        "|---|---|---|---|---|",
    ]
    names = [f"shape_{k}" for k in STATS]
    for organ in ("liver", "kidney"):
        real = [s for o, s in groups["real"] if o == organ and s["radius_mm"] >= 6.0]
        for source, items in groups.items():
            if source == "real":
                continue
            synth = [s for o, s in items if o == organ and s["radius_mm"] >= 6.0]
            both = real + synth
            X = np.array([[s[k] for k in STATS] for s in both])
            y = np.arange(len(both)) >= len(real)
            group = [s.get("group", f"synthetic{i}") for i, s in enumerate(both)]
            results = two_sample_test(
                X, names, y, group, sets={"shape": names}, n_permutations=50, seed=0
            )
            cells = {
                r.classifier: f"{r.auc:.2f} [{r.auc_low:.2f}, {r.auc_high:.2f}] p={r.p_value:.3f}"
                for r in results
            }
            rows.append(
                f"| {organ} | {source} | {len(real)} / {len(synth)} | {cells['logistic']} | "
                f"{cells['forest']} |"
            )
    return "\n".join(rows)


def before_issue_10(profile: object) -> object:
    """The profile's shape rules as they were before issue 10 (SynTumor's axis jitter, smooth
    ellipsoids with a light deformation, no lobes)."""
    from dataclasses import replace

    from tumorsynth.organs.profile import ShapeRules

    old = ShapeRules(deform_amplitude=(0.04, 0.12)) if profile.name == "kidney" else ShapeRules()  # type: ignore[attr-defined]
    classes = {
        size: replace(rule, multinodular_probability=0.0)
        for size, rule in profile.size_classes.items()  # type: ignore[attr-defined]
    }
    return replace(profile, shape=old, size_classes=classes)  # type: ignore[type-var]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=40, help="synthetic shapes per organ and class")
    args = parser.parse_args()
    groups = {
        "real": real_tumors(args.data),
        "synthetic before": synthetic_tumors(args.data, args.n, before_issue_10),
        "synthetic after": synthetic_tumors(args.data, args.n),
    }
    print(table(groups))
    print()
    print(c2st_table(groups))


if __name__ == "__main__":
    main()
