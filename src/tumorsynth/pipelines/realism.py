"""The realism study: are synthetic tumors realistic, and where exactly do they differ?

:func:`run_realism` measures every tumor of the real and the synthetic cases
(:mod:`tumorsynth.realism.features`), runs the classifier two-sample test on several feature sets
(:mod:`tumorsynth.realism.c2st`), says which features differ most
(:mod:`tumorsynth.realism.compare`), optionally runs the organ-separability study of early tumors
(:mod:`tumorsynth.realism.separability`), and writes ``report.md``, ``report.json`` and figures
(:mod:`tumorsynth.realism.report`, :mod:`tumorsynth.realism.plots`).

Grouping for cross-validation: ``"scan"`` keeps all tumors of one scan (a real scan and the
synthetic cases made from it share a group) on one side of every split; ``"tumor"`` keeps only
the patches of one tumor together (for studies with a single host scan); ``"auto"`` uses scans
when each side has at least two, tumors otherwise.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io import load_image, load_label
from tumorsynth.io.atomic import output_dir
from tumorsynth.io.label_maps import label_mask
from tumorsynth.organs import EARLY_STAGE_DIAMETER_MM
from tumorsynth.realism.c2st import FOREST_TREES, C2STResult, feature_sets, two_sample_test
from tumorsynth.realism.compare import FeatureDifference, compare_features, describe_differences
from tumorsynth.realism.features import (
    FEATURE_DESCRIPTIONS,
    CaseInput,
    FeatureSettings,
    TumorFeatures,
    extract_features,
)
from tumorsynth.realism.separability import (
    SeparabilityResult,
    organ_separability,
    tsne_embedding,
)

__all__ = ["RealismOutput", "RealismSettings", "feature_matrix", "run_realism"]

GroupBy = Literal["auto", "scan", "tumor"]


@dataclass(frozen=True)
class RealismSettings:
    """How the study runs (everything except the inputs); stored in ``report.json``.

    Attributes
    ----------
    features
        Feature extraction (common spacing, HU bin width, shell, patches, radiomics on/off).
    group_by
        Cross-validation groups: ``"scan"``, ``"tumor"`` or ``"auto"`` (module docstring).
    n_splits, n_repeats, n_permutations
        Grouped K-fold splits, repeats with new shuffles, label permutations for the null.
    n_trees
        Trees of the random-forest classifier (its cost grows with them).
    separability
        Also run the organ-separability study (tumors under ``max_diameter_mm`` of two or more
        organs; real, synthetic or both).
    max_diameter_mm
        Size limit of the separability study (default: early stage, under 2 cm).
    montage
        Tumors per row of the montage (0: none).
    seed
        Seed of cross-validation shuffles, permutations, t-SNE and patches.
    """

    features: FeatureSettings = field(default_factory=FeatureSettings)
    group_by: GroupBy = "auto"
    n_splits: int = 5
    n_repeats: int = 5
    n_permutations: int = 50
    n_trees: int = FOREST_TREES
    separability: bool = False
    max_diameter_mm: float = EARLY_STAGE_DIAMETER_MM
    montage: int = 6
    plots: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.group_by not in ("auto", "scan", "tumor"):
            raise InputError("--group-by", f"expected auto, scan or tumor, found {self.group_by!r}")
        for name, low in (("n_splits", 2), ("n_repeats", 1), ("n_permutations", 0), ("n_trees", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                flag = "--" + name.removeprefix("n_")
                raise InputError(flag, f"expected an integer >= {low}, found {value!r}")
        if not (self.max_diameter_mm > 0 and math.isfinite(self.max_diameter_mm)):
            raise InputError(
                "--max-diameter-mm", f"expected a positive number, found {self.max_diameter_mm}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = self.features.to_dict()
        return data


@dataclass
class RealismOutput:
    """What the study found and wrote."""

    rows: list[TumorFeatures]
    c2st: list[C2STResult]
    differences: list[FeatureDifference]
    sentences: list[str]
    separability: list[SeparabilityResult]
    report_md: Path
    report_json: Path
    figures: dict[str, Path]


def feature_matrix(rows: Sequence[TumorFeatures]) -> tuple[np.ndarray, list[str]]:
    """Rows -> (n, f) float array and feature names (sorted union; NaN where a row lacks one)."""
    names = sorted({name for row in rows for name in row.values})
    column = {name: j for j, name in enumerate(names)}
    x = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        for name, value in row.values.items():
            x[i, column[name]] = np.nan if value is None else float(value)
    return x, names


def run_realism(
    real: Sequence[CaseInput],
    synthetic: Sequence[CaseInput],
    out: str | Path,
    settings: RealismSettings = RealismSettings(),
    *,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> RealismOutput:
    """Measure, test and report; see the module docstring.

    Parameters
    ----------
    real, synthetic
        The cases (:func:`~tumorsynth.pipelines.realism_inputs.cases_from_sources`). The
        two-sample test needs both; the separability study runs on whichever are given.
    out
        Folder for ``report.md``, ``report.json`` and the figures (created; left empty-free on
        failure).
    cache_dir
        Per-case feature cache (default ``out/cache``): a rerun with other test settings does not
        measure again.

    Raises
    ------
    InputError
        Nothing to compare (no synthetic or no real tumors for the two-sample test, fewer than
        two organs for the separability study), too few groups for grouped cross-validation.
    """
    if not settings.separability and not (real and synthetic):
        raise InputError(
            "--real/--synthetic",
            "the two-sample test needs real and synthetic cases, found "
            f"{len(real)} real and {len(synthetic)} synthetic",
            fix="pass both, or --separability for the organ study alone",
        )
    with output_dir(out) as folder:
        cache = Path(cache_dir) if cache_dir is not None else folder / "cache"
        new_cache = cache_dir is None and not cache.exists()
        try:
            return _study(folder, cache, real, synthetic, settings, workers, progress)
        except BaseException:
            if new_cache:  # a failed run leaves nothing behind, not even its cache
                shutil.rmtree(cache, ignore_errors=True)
            raise


def _study(
    folder: Path,
    cache: Path,
    real: Sequence[CaseInput],
    synthetic: Sequence[CaseInput],
    settings: RealismSettings,
    workers: int,
    progress: bool,
) -> RealismOutput:
    """The body of :func:`run_realism`, writing into ``folder``."""
    rows = extract_features(
        [*real, *synthetic],
        settings.features,
        workers=workers,
        cache_dir=cache,
        progress=progress,
    )
    cases = {(case.source, case.case): case for case in [*real, *synthetic]}
    c2st: list[C2STResult] = []
    differences: list[FeatureDifference] = []
    sentences: list[str] = []
    figures: dict[str, Path] = {}
    tested = _rows_for_test(rows, settings)
    if real and synthetic:
        _require_both(tested, settings)
        x, names = feature_matrix(tested)
        is_synthetic = np.array([row.source == "synthetic" for row in tested])
        groups, clusters = _groups(tested, settings.group_by)
        c2st = two_sample_test(
            x,
            names,
            is_synthetic,
            groups,
            sets=feature_sets(names),
            n_splits=settings.n_splits,
            n_repeats=settings.n_repeats,
            n_permutations=settings.n_permutations,
            n_trees=settings.n_trees,
            seed=settings.seed,
            progress=progress,
            clusters=clusters,
        )
        differences = compare_features(x, names, is_synthetic)
        sentences = describe_differences(differences, descriptions=FEATURE_DESCRIPTIONS)
        if settings.plots:
            figures.update(
                _c2st_figures(
                    folder,
                    tested,
                    [row for row in rows if row.patch == 0],
                    cases,
                    (x, names, is_synthetic),
                    c2st,
                    differences,
                    settings,
                )
            )
    separability: list[SeparabilityResult] = []
    embedding = None
    if settings.separability:
        early = [
            row for row in rows if row.patch == 0 and row.diameter_mm < settings.max_diameter_mm
        ]
        organs = sorted({row.organ for row in early})
        if len(organs) < 2:
            raise InputError(
                "--separability",
                f"needs tumors under {settings.max_diameter_mm:g} mm of at least two organs, "
                f"found {len(early)} tumor(s) of {organs or 'no organ'}",
                fix="add cases with small tumors of other organs, or raise --max-diameter-mm",
            )
        xs, names_s = feature_matrix(early)
        keep = [j for j, n in enumerate(names_s) if not n.startswith(("size_", "host_"))]
        xs, names_s = xs[:, keep], [names_s[j] for j in keep]
        organ_of = [row.organ for row in early]
        separability = organ_separability(
            xs, names_s, organ_of, n_repeats=settings.n_repeats, seed=settings.seed
        )
        embedding = tsne_embedding(xs, seed=settings.seed)
        if settings.plots:
            from tumorsynth.realism.plots import plot_tsne

            figures["tsne"] = plot_tsne(
                folder / "tsne.png", embedding, organ_of, [row.source for row in early]
            )
    from tumorsynth.realism.report import write_report

    report_md, report_json = write_report(
        folder,
        rows=tested if real and synthetic else rows,
        c2st=c2st,
        differences=differences,
        sentences=sentences,
        settings={
            **settings.to_dict(),
            "n_real_cases": len(real),
            "n_synthetic_cases": len(synthetic),
        },
        separability=separability,
        tsne=embedding,
        figures={name: path.relative_to(folder) for name, path in figures.items()},
    )
    return RealismOutput(
        rows, c2st, differences, sentences, separability, report_md, report_json, figures
    )


def _rows_for_test(rows: Sequence[TumorFeatures], settings: RealismSettings) -> list[TumorFeatures]:
    """Whole tumors, or their patches when patches were asked for."""
    if settings.features.patches_per_tumor > 0:
        return [row for row in rows if row.patch > 0]
    return [row for row in rows if row.patch == 0]


def _require_both(rows: Sequence[TumorFeatures], settings: RealismSettings) -> None:
    counts = {kind: sum(row.source == kind for row in rows) for kind in ("real", "synthetic")}
    missing = [kind for kind, n in counts.items() if n == 0]
    if missing:
        raise InputError(
            "--real/--synthetic",
            f"found no {' and no '.join(missing)} tumors to compare (at least "
            f"{settings.features.min_volume_mm3:g} mm^3 each): {counts['real']} real, "
            f"{counts['synthetic']} synthetic",
            fix="check the label maps and --organ, or lower --min-volume-mm3",
        )


def _groups(rows: Sequence[TumorFeatures], group_by: GroupBy) -> tuple[list[str], list[str] | None]:
    """CV groups per row, and the clusters the null moves whole (cases, when grouping by scan)."""
    by_tumor = [f"{row.source}:{row.case}#{row.tumor}" for row in rows]
    by_scan = [row.group for row in rows]
    if group_by == "auto":
        enough = all(
            len({g for g, row in zip(by_scan, rows) if row.source == kind}) >= 2
            for kind in ("real", "synthetic")
        )
        group_by = "scan" if enough else "tumor"
    if group_by == "tumor":
        return by_tumor, None
    return by_scan, [f"{row.source}:{row.case}" for row in rows]


def _c2st_figures(
    folder: Path,
    rows: Sequence[TumorFeatures],
    whole: Sequence[TumorFeatures],
    cases: dict[tuple[str, str], CaseInput],
    table: tuple[np.ndarray, list[str], np.ndarray],
    c2st: Sequence[C2STResult],
    differences: Sequence[FeatureDifference],
    settings: RealismSettings,
) -> dict[str, Path]:
    from tumorsynth.realism.plots import plot_feature_distributions, plot_roc

    x, names, is_synthetic = table
    figures = {
        "features": plot_feature_distributions(
            folder / "features.png",
            x,
            names,
            is_synthetic,
            [d.name for d in differences[:8]],
            descriptions=FEATURE_DESCRIPTIONS,
        ),
        "roc": plot_roc(folder / "roc.png", c2st, is_synthetic),
    }
    if settings.montage > 0:
        figures["montage"] = _montage(folder, rows, whole, cases, c2st, settings.montage)
    return figures


def _montage(
    folder: Path,
    rows: Sequence[TumorFeatures],
    whole: Sequence[TumorFeatures],
    cases: dict[tuple[str, str], CaseInput],
    c2st: Sequence[C2STResult],
    per_row: int,
) -> Path:
    """The synthetic tumors the classifier finds most synthetic, beside real ones (whole tumors:
    a tumor tested as patches gets the mean score of its patches)."""
    from tumorsynth.realism.plots import plot_montage, tumor_slice

    appearance = [r for r in c2st if r.feature_set == "appearance"] or list(c2st)
    best = max(appearance, key=lambda r: r.auc)
    scores: dict[tuple[str, str, int], list[float]] = {}
    for row, value in zip(rows, best.oof_score):
        scores.setdefault((row.source, row.case, row.tumor), []).append(float(value))
    tumors = [row for row in whole if (row.source, row.case, row.tumor) in scores]
    score = [float(np.mean(scores[(row.source, row.case, row.tumor)])) for row in tumors]
    synthetic = [i for i, row in enumerate(tumors) if row.source == "synthetic"]
    real = [i for i, row in enumerate(tumors) if row.source == "real"]
    picked_synth = sorted(synthetic, key=lambda i: -score[i])[:per_row]
    picked_real = sorted(real, key=lambda i: score[i])[:per_row]
    # One case in memory at a time; tumor_slice reads one slice of it.
    by_case: dict[tuple[str, str], list[int]] = {}
    for i in (*picked_real, *picked_synth):
        by_case.setdefault((tumors[i].source, tumors[i].case), []).append(i)
    tiles: dict[int, tuple[np.ndarray, str, np.ndarray]] = {}
    for key, indices in by_case.items():
        case = cases[key]
        image, label = load_image(case.image), load_label(case.label)
        organ_masks: dict[str, np.ndarray] = {}
        for i in indices:
            row = tumors[i]
            if row.organ not in organ_masks:
                organ_masks[row.organ] = label_mask(
                    label.array, case.label_map.tumor_ids(row.organ)
                )
            hu, mask = tumor_slice(
                image.array, organ_masks[row.organ], row, 10.0, image.spacing_mm,
                affine=image.affine,
            )  # fmt: skip
            caption = f"{row.case} #{row.tumor}\n{row.volume_ml:.1f} mL, score {score[i]:.2f}"
            tiles[i] = (hu, caption, mask)

    liver = all(row.organ == "liver" for row in tumors)
    return plot_montage(
        folder / "montage.png",
        [tiles[i] for i in picked_real],
        [tiles[i] for i in picked_synth],
        per_row=per_row,
        level_hu=60.0 if liver else 40.0,  # the liver window W150 L60, else soft tissue
        width_hu=150.0 if liver else 400.0,
    )
