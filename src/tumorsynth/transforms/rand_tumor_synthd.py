"""MONAI dictionary transform: synthesize tumors on the fly while training.

Place it after ``LoadImaged`` + ``EnsureChannelFirstd`` and before any intensity scaling (the
appearance model works in HU). It works on channel-first arrays or MetaTensors at any spacing and
orientation (spacing comes from the MetaTensor's affine), draws once per call from ``self.R``, and
always returns the label in the output convention (1 liver, 2 liver tumor, 3 pancreas, 4 pancreas
tumor, 5 kidney, 6 kidney tumor), with or without tumors, so batches are consistent.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from tumorsynth import DEFAULT_GENERATOR
from tumorsynth._types import SizeClass, derive_seed
from tumorsynth.errors import InputError, PlacementError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map, to_output_labels
from tumorsynth.io.nifti import spacing_from_affine
from tumorsynth.organs import get_profile
from tumorsynth.pipelines.filter_settings import FilterSettings
from tumorsynth.pipelines.synthesize import TumorRequest, synthesize_case

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
        Organ name or several (``("liver", "kidney")``); one is chosen per call.
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
    ) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise InputError(
                "RandTumorSynthd(prob=...)", f"expected a probability in [0, 1], found {prob}"
            )
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
        self.generator = get_generator(generator, **dict(generator_options or {}))
        self.output_labels = output_labels
        self.records_key = records_key
        if on_error not in ("raise", "skip"):
            raise InputError(
                "RandTumorSynthd(on_error=...)", f"expected 'raise' or 'skip', found {on_error!r}"
            )
        self.on_error = on_error
        self.filter = _filter_settings(filter)
        self._seed = 0
        self._organ_index = 0

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandTumorSynthd:
        super().set_random_state(seed, state)
        return self

    def _filters(self) -> Sequence[TumorFilter]:
        if isinstance(self.filter, FilterSettings):
            return self.filter.build()  # loaded once per process
        return self.filter

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._organ_index = int(self.R.randint(len(self.requests)))
        self._seed = int(self.R.randint(2**31 - 1))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
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
        lab = _channel(label, label_key).astype(np.int64, copy=False)
        if lab.min() >= 0 and lab.max() < 256:
            lab = lab.astype(np.uint8)
        records: list[dict[str, Any]] = []
        new_image, new_label = None, None
        if self._do_transform:
            affine = _affine(image, d, image_key)
            try:
                out = synthesize_case(
                    img,
                    lab,
                    spacing_mm=spacing_from_affine(affine),
                    label_map=self.label_map,
                    requests=[self.requests[self._organ_index]],
                    generator=self.generator,
                    rng=self._seed,
                    affine=affine,
                    output_labels=self.output_labels,
                    where=f"RandTumorSynthd[{image_key}]",
                    filters=self._filters(),
                )
                new_image, new_label = out.image, out.label
                records = [r.to_dict() for r in out.records]
            except PlacementError as exc:
                if self.on_error == "raise":
                    raise
                warnings.warn(f"RandTumorSynthd: no tumors this time: {exc}", stacklevel=2)
        if new_label is None:
            new_label = to_output_labels(lab, self.label_map, self.output_labels, self.organs)
        if new_image is not None:
            d[image_key] = as_type_of(new_image[None], image)
        d[label_key] = as_type_of(new_label[None], label)
        if self.records_key is not None:
            d[self.records_key] = records
        return d


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


def as_type_of(array: Any, like: Any) -> Any:
    """``array`` (same shape as ``like``) in the type, device and meta of ``like``."""
    out, *_ = convert_to_dst_type(array, like, dtype=None)
    if isinstance(like, MetaTensor) and isinstance(out, MetaTensor):
        out.copy_meta_from(like)
    return out


class TumorSynthd(MapTransform):
    """The deterministic twin of :class:`RandTumorSynthd`: tumors drawn from a fixed seed per case.

    For validation sets made from healthy scans: every epoch sees the same synthetic tumors. The
    seed of a sample is ``derive_seed(seed, data[id_key])``.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "label"),
        organ: str = "liver",
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
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        case_id = str(data.get(self.id_key, ""))
        return self._rand.set_random_state(seed=derive_seed(self.seed, case_id) % (2**32))(data)
