"""MONAI dictionary transform: synthesize tumors on the fly while training.

Place it after ``LoadImaged`` + ``EnsureChannelFirstd`` and before any intensity scaling (the
appearance model works in HU). It works on channel-first arrays or MetaTensors at any spacing and
orientation (spacing comes from the MetaTensor's affine), draws once per call from ``self.R``, and
always returns the label in the output convention (1 liver, 2 liver tumor, 3 pancreas, 4 pancreas
tumor, 5 kidney, 6 kidney tumor, 7 colon, 8 colon tumor, 9 esophagus, 10 esophagus tumor,
11 uterus, 12 uterus tumor: every organ the input map names, with or without tumors), so
batches are consistent. With several organs, each call puts its tumors into one of them.

Online, in a training loader, two things make it cheap. Each scan's organ analysis (distance
maps, vessels, noise) is kept per process and reused for every later draw of the same scan
(``cache_scans``, ``cache_dir``: :class:`~tumorsynth.organs.context_cache.ContextCache`). With
``crop_size`` it draws training crops itself, crop first: a crop centred on a background, organ
or tumor voxel as ``crop_ratios`` say (``RandCropByLabelClassesd``'s classes), and tumors only for
the tumor crops, centred in the crop and rendered in the crop plus the reach of its tumors, so a
crop costs what its tumors cost, not what the scan does.

In a ``torch.utils.data.DataLoader`` worker (which, unlike MONAI's, does not reseed transforms),
the transform derives its stream once per worker from its own and the worker's seed, so workers
draw different tumors, and the same seeds (transform and loader) draw the same ones.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from tumorsynth import DEFAULT_GENERATOR
from tumorsynth._types import SizeClass, derive_seed
from tumorsynth.box import Box
from tumorsynth.errors import InputError, PlacementError, PlacementWarning
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map, to_output_labels
from tumorsynth.io.nifti import spacing_from_affine
from tumorsynth.organs import get_profile
from tumorsynth.organs.context_cache import ContextCache, organ_context
from tumorsynth.pipelines.filter_settings import FilterSettings
from tumorsynth.pipelines.synthesize import (
    RegionOutput,
    SynthesisOutput,
    TumorRequest,
    synthesize_case,
)

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

__all__ = ["RandTumorSynthd", "TumorSynthd", "as_type_of"]


class RandTumorSynthd(RandomizableTransform, MapTransform):
    """Randomly put synthetic tumors into ``image`` and label them in ``label``.

    Parameters
    ----------
    keys
        ``(image_key, label_key)``.
    organ
        Organ name or several (``("liver", "colon", "uterus")``); one is chosen per call. A
        hollow organ's (colon, esophagus) tumors are wall thickenings along the tube.
    prob
        Probability of synthesizing tumors on a call.
    count, size
        Tumors per call (None: drawn from the organ profile) and size class or ``"mixed"``.
    label_map
        Input label convention (preset, JSON path, mapping or LabelMap).
    generator
        Appearance generator name or instance (``heuristic``, ``diffusion``, or registered ones).
    generator_options
        Factory options for a generator given by name, e.g. ``{"checkpoint": DIR}`` for
        ``diffusion`` (in DataLoader workers, add ``"device": "cpu"`` or use 0 workers).
    output_labels
        Output label convention.
    records_key
        If set, the tumor records (dicts) are stored under this key.
    on_error
        ``"raise"`` (default) or ``"skip"``: when the organ is missing or too small, return the
        sample without tumors and warn.
    filter
        A quality filter (FreeTumor's, online): :class:`~tumorsynth.pipelines.filter_settings.
        FilterSettings`, the mapping of its fields (``{"checkpoints": [DIR], "threshold": 0.7,
        "retries": 3, "on_fail": "keep"}``; in DataLoader workers add ``"device": "cpu"``), or
        loaded :class:`~tumorsynth.pipelines.tumor_filter.TumorFilter` instances. Settings load
        their segmentors in the process that first uses them (each loader worker).
    allow_missing_keys
        Return the data unchanged when a key is missing.
    crop_size
        Draw ``num_samples`` crops of this size (voxels per axis) and return them as a list
        (as ``RandCropByLabelClassesd`` does); None returns the whole volume.
    crop_ratios
        Shares of crops centred on a background voxel, an organ voxel, and a tumor: a tumor crop
        gets the tumors (``count``, ``size``) centred inside it, the others none.
    num_samples
        Crops per call.
    cache_scans
        Scans whose organ analysis is kept in memory, per process (0: none).
    cache_dir
        Folder where analyses are kept for other processes and later runs (None: memory only).

    Examples
    --------
    >>> import numpy as np
    >>> from tumorsynth.phantom import make_phantom
    >>> ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> t = RandTumorSynthd(("image", "label"), organ="liver", prob=1.0, count=1,
    ...                     label_map="phantom").set_random_state(0)
    >>> out = t({"image": ct.array[None].astype(np.float32), "label": seg.array[None],
    ...          "image_meta_dict": {"affine": ct.affine}})
    >>> bool((out["label"] == 2).any())
    True
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        organ: str | Sequence[str] = "liver",
        prob: float = 1.0,
        count: int | None = None,
        size: SizeClass | Literal["mixed"] = "small",
        label_map: str | Mapping[str, Any] | LabelMap = "totalsegmentator",
        generator: str | TumorGenerator = DEFAULT_GENERATOR,
        output_labels: LabelMap = OUTPUT_LABELS,
        records_key: str | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        generator_options: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
        filter: FilterSettings | Mapping[str, Any] | Sequence[TumorFilter] | None = None,  # noqa: A002
        crop_size: int | Sequence[int] | None = None,
        crop_ratios: Sequence[float] = (1.0, 1.0, 1.0),
        num_samples: int = 1,
        cache_scans: int = 8,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise InputError(
                "RandTumorSynthd(prob=...)", f"expected a probability in [0, 1], found {prob}"
            )
        self.crops = _crop_settings(crop_size, crop_ratios, num_samples)
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if len(self.keys) != 2:
            raise InputError(
                "RandTumorSynthd(keys=...)", f"expected (image_key, label_key), found {self.keys}"
            )
        self.organs = (organ,) if isinstance(organ, str) else tuple(organ)
        for name in self.organs:
            get_profile(name)
        self.requests = tuple(TumorRequest(name, count, size) for name in self.organs)
        self.label_map = resolve_label_map(label_map)
        # The relabelling of every 8-bit id, for crops (one lookup instead of a pass per id).
        self._relabelled = to_output_labels(
            np.arange(256, dtype=np.uint8), self.label_map, output_labels, self.organs
        )
        self.generator = get_generator(generator, **dict(generator_options or {}))
        self.output_labels = output_labels
        self.records_key = records_key
        if on_error not in ("raise", "skip"):
            raise InputError(
                "RandTumorSynthd(on_error=...)", f"expected 'raise' or 'skip', found {on_error!r}"
            )
        self.on_error = on_error
        self.filter = _filter_settings(filter)
        self.contexts = ContextCache(cache_scans, cache_dir)
        self._seed = 0
        self._organ_index = 0
        self._worker: tuple[int, int] | None = None  # the loader worker whose stream R is

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandTumorSynthd:
        super().set_random_state(seed, state)
        self._worker = _worker()  # seeded here (MONAI's loader seeds each worker): keep it
        return self

    def _reseed_in_worker(self) -> None:
        """Once per torch loader worker: R from R's next value and the worker's seed, unless R
        was seeded in this worker already."""
        here, info = _worker(), torch.utils.data.get_worker_info()
        if here is None or info is None or here == self._worker:
            return
        base = int(self.R.randint(2**31 - 1))
        self.R = np.random.RandomState(derive_seed(base, int(info.seed)) % 2**32)
        self._worker = here

    def _filters(self) -> Sequence[TumorFilter]:
        if isinstance(self.filter, FilterSettings):
            return self.filter.build()  # loaded once per process
        return self.filter

    def randomize(self, data: Any = None) -> None:
        self._reseed_in_worker()
        super().randomize(None)
        self._organ_index = int(self.R.randint(len(self.requests)))
        self._seed = int(self.R.randint(2**31 - 1))

    def __call__(self, data: Mapping[Hashable, Any]) -> Any:
        d = dict(data)
        image_key, label_key = self.keys
        if image_key not in d or label_key not in d:
            if self.allow_missing_keys:
                return d
            missing = [k for k in (image_key, label_key) if k not in d]
            raise InputError("RandTumorSynthd", f"data has no key(s) {missing}; it has {list(d)}")
        self.randomize()
        image, label = d[image_key], d[label_key]
        img = _channel(image, image_key)
        lab = _channel(label, label_key)
        affine = _affine(image, d, image_key)
        if self.crops is not None:
            return self._crops(d, img, lab, affine)
        lab = _label_ids(lab)
        records: list[dict[str, Any]] = []
        out = self._synthesize(img, lab, affine, self._seed) if self._do_transform else None
        if out is not None:
            d[image_key] = as_type_of(out.image[None], image)
            records = [r.to_dict() for r in out.records]
            new_label = out.label
        else:
            new_label = self._relabel(lab)
        d[label_key] = as_type_of(new_label[None], label)
        if self.records_key is not None:
            d[self.records_key] = records
        return d

    def _synthesize(
        self,
        img: np.ndarray,
        lab: np.ndarray,
        affine: np.ndarray,
        seed: int,
        **region: Any,
    ) -> SynthesisOutput | None:
        """Tumors of this call's request (None when they do not fit and ``on_error`` skips)."""
        try:
            return synthesize_case(
                img,
                lab,
                spacing_mm=spacing_from_affine(affine),
                label_map=self.label_map,
                requests=[self.requests[self._organ_index]],
                generator=self.generator,
                rng=seed,
                affine=affine,
                output_labels=self.output_labels,
                where=f"RandTumorSynthd[{self.keys[0]}]",
                filters=self._filters(),
                context_cache=self.contexts,
                **region,
            )
        except PlacementError as exc:
            if self.on_error == "raise":
                raise
            warnings.warn(f"RandTumorSynthd: no tumors this time: {exc}", stacklevel=3)
            return None

    def _relabel(self, lab: np.ndarray) -> np.ndarray:
        if lab.dtype == np.uint8:
            return np.take(self._relabelled, lab)
        return to_output_labels(lab, self.label_map, self.output_labels, self.organs)

    # -- crop first ----------------------------------------------------------------------------
    def _crops(
        self, d: dict[Hashable, Any], img: np.ndarray, lab: np.ndarray, affine: np.ndarray
    ) -> list[dict[Hashable, Any]]:
        """``num_samples`` crops; tumors are drawn for the tumor crops only (module docstring)."""
        size, ratios, n = self.crops  # type: ignore[misc]
        rng = np.random.default_rng(self._seed)
        organ = self.organs[self._organ_index]
        ids = self.label_map.organ_ids(organ)
        lesion = (*ids, *self.label_map.tumor_ids(organ))
        kinds = rng.choice(3, size=n, p=ratios)
        context = None
        if (kinds > 0).any():
            try:
                context = organ_context(
                    img,
                    lab,
                    organ,
                    self.label_map,
                    spacing_from_affine(affine),
                    where=f"RandTumorSynthd[{self.keys[0]}]",
                    cache=self.contexts,
                )
            except PlacementError as exc:
                if self.on_error == "raise":
                    raise
                warnings.warn(f"RandTumorSynthd: no tumors this time: {exc}", stacklevel=3)
        samples = []
        for kind in kinds:
            seed = int(rng.integers(2**63 - 1))
            if kind == 0 or context is None:
                centre = _random_voxel(lab, lesion, Box((0, 0, 0), lab.shape), rng, inside=False)
            else:
                organ_box = Box(
                    tuple(b.start for b in context.bbox),
                    tuple(b.stop - b.start for b in context.bbox),
                )
                centre = _random_voxel(lab, ids, organ_box, rng, inside=True)
            crop = _crop_box(centre, size, lab.shape)
            out: SynthesisOutput | None = None
            if kind == 2 and context is not None and self._do_transform:
                with warnings.catch_warnings():  # a crop holds the planned tumors that fit in it
                    warnings.simplefilter("ignore", PlacementWarning)
                    out = self._synthesize(
                        img, lab, affine, seed, window=crop, contexts={organ: context}
                    )
            region = out if isinstance(out, RegionOutput) else None
            samples.append(self._sample(d, img, lab, affine, crop, region))
        return samples

    def _sample(
        self,
        d: dict[Hashable, Any],
        img: np.ndarray,
        lab: np.ndarray,
        affine: np.ndarray,
        crop: Box,
        out: RegionOutput | None,
    ) -> dict[Hashable, Any]:
        """One crop of the scan (of the synthesized region when there is one) as a sample."""
        image_key, label_key = self.keys
        sample = dict(d)
        records: list[dict[str, Any]] = []
        if out is None:
            image = np.array(img[crop.slices])
            label = self._relabel(_label_ids(lab[crop.slices]))
        else:
            inner = out.region.inner(crop)
            image, label = np.array(out.image[inner]), np.array(out.label[inner])
            where = {"origin": list(crop.origin), "shape": list(crop.shape)}
            if self.records_key is not None:
                records = [{**r.to_dict(), "crop": where} for r in out.records]
        shifted = np.array(affine, dtype=float)
        shifted[:3, 3] += shifted[:3, :3] @ np.asarray(crop.origin, dtype=float)
        for key, value in ((image_key, image), (label_key, label)):
            sample[key] = _cropped_like(value[None], d[key], shifted)
            meta = d.get(f"{key}_meta_dict")
            if isinstance(meta, Mapping):
                sample[f"{key}_meta_dict"] = {**meta, "affine": shifted}
        if self.records_key is not None:
            sample[self.records_key] = records
        return sample


def _worker() -> tuple[int, int] | None:
    """(process id, worker id) inside a torch DataLoader worker, else None."""
    info = torch.utils.data.get_worker_info()
    return None if info is None else (os.getpid(), int(info.id))


def _crop_settings(
    crop_size: int | Sequence[int] | None, crop_ratios: Sequence[float], num_samples: int
) -> tuple[tuple[int, int, int], np.ndarray, int] | None:
    """(size, normalized ratios, samples), checked; None without ``crop_size``."""
    if crop_size is None:
        return None
    size = (crop_size,) * 3 if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 3 or any(isinstance(n, bool) or int(n) != n or n < 1 for n in size):
        raise InputError(
            "RandTumorSynthd(crop_size=...)", f"expected 3 voxel counts >= 1, found {crop_size}"
        )
    ratios = np.asarray(crop_ratios, dtype=float)
    if ratios.shape != (3,) or not np.all(np.isfinite(ratios)) or (ratios < 0).any():
        raise InputError(
            "RandTumorSynthd(crop_ratios=...)",
            f"expected 3 shares >= 0 (background, organ, tumor), found {list(crop_ratios)}",
        )
    if ratios.sum() <= 0:
        raise InputError("RandTumorSynthd(crop_ratios=...)", "expected a share above 0")
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise InputError(
            "RandTumorSynthd(num_samples=...)", f"expected a count >= 1, found {num_samples}"
        )
    return tuple(int(n) for n in size), ratios / ratios.sum(), int(num_samples)  # type: ignore[return-value]


def _random_voxel(
    label: np.ndarray,
    ids: Sequence[int],
    box: Box,
    rng: np.random.Generator,
    *,
    inside: bool,
    tries: int = 64,
) -> np.ndarray:
    """A voxel of ``box`` drawn uniformly among those whose label is (``inside``) or is not in
    ``ids``: by rejection (a few reads), else from all of them; the box centre if there is none."""
    lo, n = np.asarray(box.origin), np.asarray(box.shape)
    for _ in range(tries):
        vox = lo + (rng.random(3) * n).astype(int)
        if (int(label[tuple(vox)]) in ids) == inside:
            return vox
    hits = np.isin(label[box.slices], ids) == inside
    found = np.argwhere(hits)
    if not len(found):
        return lo + n // 2
    return lo + found[int(rng.integers(len(found)))]


def _crop_box(centre: np.ndarray, size: Sequence[int], shape: Sequence[int]) -> Box:
    """The ``size`` box around ``centre`` moved inside the scan (cut to the scan when larger)."""
    edge = [min(k, n) for k, n in zip(size, shape)]
    lo = [int(np.clip(c - k // 2, 0, n - k)) for c, k, n in zip(centre, edge, shape)]
    return Box(tuple(lo), tuple(edge))  # type: ignore[arg-type]


def _label_ids(array: np.ndarray) -> np.ndarray:
    """Integer label ids: integer labels as they are, others (floats from MONAI) truncated."""
    if array.dtype.kind in "iu":
        return array
    ids = array.astype(np.int64)
    return ids.astype(np.uint8) if ids.min() >= 0 and ids.max() < 256 else ids


def _cropped_like(array: np.ndarray, like: Any, affine: np.ndarray) -> Any:
    """A crop (channel first) in the type of ``like``; a MetaTensor gets the crop's affine."""
    out = as_type_of(array, like)
    if isinstance(out, MetaTensor):
        out.affine = torch.as_tensor(affine, dtype=torch.float64)
    return out


def _filter_settings(
    value: FilterSettings | Mapping[str, Any] | Sequence[TumorFilter] | None,
) -> FilterSettings | Sequence[TumorFilter]:
    """Settings (checked now, loaded on first use) or loaded filters; () for none."""
    if value is None:
        return ()
    if isinstance(value, FilterSettings):
        return value
    if isinstance(value, Mapping):
        return FilterSettings.from_mapping(value)
    return tuple(value)


def _channel(value: Any, key: Hashable) -> np.ndarray:
    """The single channel of a channel-first array/tensor as a numpy array."""
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != 4 or array.shape[0] != 1:
        raise InputError(
            f"RandTumorSynthd[{key!r}]",
            f"expected a channel-first 3-D volume of shape (1, X, Y, Z), found {array.shape}",
            fix="add EnsureChannelFirstd before this transform",
        )
    return array[0]


def _affine(image: Any, data: Mapping[Hashable, Any], key: Hashable) -> np.ndarray:
    if isinstance(image, MetaTensor):
        return np.asarray(image.affine.detach().cpu().numpy(), dtype=float)
    meta = data.get(f"{key}_meta_dict")
    if isinstance(meta, Mapping) and "affine" in meta:
        affine = meta["affine"]
        return np.asarray(
            affine.numpy() if isinstance(affine, torch.Tensor) else affine, dtype=float
        )
    raise InputError(
        f"RandTumorSynthd[{key!r}]",
        "cannot tell the voxel spacing: expected a "
        f"MetaTensor or a '{key}_meta_dict' with an affine, found neither",
        fix="load with LoadImaged (image_only=True gives MetaTensors)",
    )


def as_type_of(array: Any, like: Any, dtype: Any = None) -> Any:
    """``array`` (same shape as ``like``) in the type, device and meta of ``like`` (and in
    ``dtype``; None: that of ``like``)."""
    out, *_ = convert_to_dst_type(array, like, dtype=dtype)
    if isinstance(like, MetaTensor) and isinstance(out, MetaTensor):
        out.copy_meta_from(like)
    return out


class TumorSynthd(MapTransform):
    """The deterministic twin of :class:`RandTumorSynthd`: tumors drawn from a fixed seed per case.

    For validation sets made from healthy scans: every epoch sees the same synthetic tumors. The
    seed of a sample is ``derive_seed(seed, data[id_key])``; ``cache_scans`` and ``cache_dir``
    keep the scans' organ analyses as in :class:`RandTumorSynthd`.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        organ: str | Sequence[str] = "liver",
        count: int | None = None,
        size: SizeClass | Literal["mixed"] = "mixed",
        label_map: str | Mapping[str, Any] | LabelMap = "totalsegmentator",
        generator: str | TumorGenerator = DEFAULT_GENERATOR,
        seed: int = 0,
        id_key: str = "case_id",
        output_labels: LabelMap = OUTPUT_LABELS,
        records_key: str | None = None,
        generator_options: Mapping[str, Any] | None = None,
        filter: FilterSettings | Mapping[str, Any] | Sequence[TumorFilter] | None = None,  # noqa: A002
        cache_scans: int = 8,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(keys)
        self.seed = int(seed)
        self.id_key = id_key
        self._rand = RandTumorSynthd(
            keys,
            organ=organ,
            prob=1.0,
            count=count,
            size=size,
            label_map=label_map,
            generator=generator,
            output_labels=output_labels,
            records_key=records_key,
            on_error="skip",
            generator_options=generator_options,
            filter=filter,
            cache_scans=cache_scans,
            cache_dir=cache_dir,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        case_id = str(data.get(self.id_key, ""))
        return self._rand.set_random_state(seed=derive_seed(self.seed, case_id) % (2**32))(data)
