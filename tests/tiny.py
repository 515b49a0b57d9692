"""Tiny data and configurations shared by the training, generator and CLI tests (seconds on a CPU).

Imported as ``from tiny import ...`` (``tests/`` is on the test path, like ``conftest``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom

#: A VQ autoencoder that trains in seconds on 16^3 crops at 4 mm.
TINY_AE: dict[str, Any] = {
    "channels": [8, 16],
    "num_embeddings": 32,
    "embedding_dim": 4,
    "crop_size": 16,
    "spacing_mm": [4.0, 4.0, 4.0],
}
#: A latent denoiser to go with it.
TINY_DENOISER: dict[str, Any] = {
    "channels": [16, 32],
    "attention_levels": [False, True],
    "num_res_blocks": 1,
    "num_head_channels": 8,
    "norm_num_groups": 8,
    "num_train_timesteps": 50,
    "sample_steps": [2, 3],
}


def write_phantom_dataset(root: Path, cases: int = 2) -> Path:
    """An nnU-Net folder of healthy phantoms ``ph<i>`` (96 x 80 x 48 voxels of 4 x 4 x 5 mm,
    labels of the ``"phantom"`` preset)."""
    for i in range(cases):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        save_volume(ct, root / "imagesTr" / f"ph{i}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"ph{i}.nii.gz")
    return root


def segmentor_settings(data: Path, out: Path, max_steps: int = 2, **data_settings: Any) -> dict:
    """A UNet on 32^3 patches at 4 mm trained on synthetic liver tumors in ``data``."""
    return {
        "name": "tiny",
        "seed": 0,
        "data": {
            "mode": "synthetic",
            "healthy": [str(data)],
            "healthy_label_map": "phantom",
            "val_fraction": 0.0,
            "spacing_mm": [4, 4, 4],
            "num_workers": 0,
            **data_settings,
        },
        "model": {"patch_size": [32, 32, 32], "channels": [8, 16, 32]},
        "optim": {"max_steps": max_steps, "batch_size": 2},
        "train": {"out_dir": str(out)},
    }


def tiny_config(dataset: Path, out: Path, **data):
    settings = {
        "mode": "synthetic",
        "organ": "liver",
        "healthy": [{"path": str(dataset), "label_map": "phantom"}],
        "val_fraction": 0.34,
        "spacing_mm": [4.0, 4.0, 4.0],
        "num_workers": 0,
        "tumor_size": "medium",
        "tumors_per_case": 2,
    }
    settings.update(data)
    return {
        "name": "tiny",
        "seed": 0,
        "data": settings,
        "model": {"backbone": "unet", "patch_size": [32, 32, 32], "channels": [8, 16, 32]},
        "optim": {"max_steps": 8, "batch_size": 2, "warmup_steps": 2, "lr": 1e-3},
        "train": {"out_dir": str(out), "val_every": 4, "checkpoint_every": 4, "log_every": 1},
    }


def phantom_test_set(folder: Path) -> dict[str, str]:
    """A study's test set entry for a batch output folder of liver tumor phantoms."""
    return {
        "name": "phantom liver",
        "images": str(folder / "imagesTr"),
        "labels": str(folder / "labelsTr"),
        "label_map": "tumorsynth",
        "organ": "liver",
    }


def far_from(
    mask: np.ndarray, spacing_mm: tuple[float, float, float], distance_mm: float
) -> np.ndarray:
    """Voxels farther than ``distance_mm`` from every voxel of ``mask``."""
    import edt

    return edt.edt(~mask, anisotropy=spacing_mm) > distance_mm


def tiny_diffusion(seed: int = 0, crop_size: int = 16, spacing_mm: float = 4.0):
    """An untrained, tiny latent diffusion model (seeded weights): fast enough for CPU tests."""
    import torch

    from tumorsynth.models.tumor_diffusion import (
        AutoencoderConfig,
        DenoiserConfig,
        TumorDiffusion,
        build_autoencoder,
        build_denoiser,
    )

    ae_config = AutoencoderConfig(
        **{**_tuples(TINY_AE), "crop_size": crop_size, "spacing_mm": (spacing_mm,) * 3}
    )
    config = DenoiserConfig(**_tuples(TINY_DENOISER))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        autoencoder = build_autoencoder(ae_config)
        denoiser = build_denoiser(config, ae_config.embedding_dim)
    return TumorDiffusion(autoencoder, ae_config, denoiser, config, scale_factor=1.0)


def tiny_adversary(seed: int = 0, crop_size: int = 16, spacing_mm: float = 4.0):
    """An untrained, tiny adversarial generator (seeded weights) for CPU tests."""
    import torch

    from tumorsynth.models.adversarial import AdversarialConfig, TumorAdversary, build_change_net

    config = AdversarialConfig(
        crop_size=crop_size,
        spacing_mm=(spacing_mm,) * 3,
        channels=(4, 8),
        max_change_hu=80.0,
        smooth_mm=spacing_mm,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_change_net(config)
    return TumorAdversary(net.eval(), config)


def synthesize_phantom(
    phantom: tuple[Any, Any],
    generator: Any = "heuristic",
    *,
    organ: str = "liver",
    count: int = 2,
    size: str = "small",
    rng: int = 0,
    **options: Any,
):
    """``synthesize_case`` on a ``(ct, seg)`` phantom (labels of the ``"phantom"`` preset);
    ``options`` go to it as they are."""
    from tumorsynth.pipelines.synthesize import synthesize_case

    ct, seg = phantom
    return synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        organ=organ,
        count=count,
        size=size,
        generator=generator,
        rng=rng,
        affine=ct.affine,
        **options,
    )


def replay_phantom(phantom: tuple[Any, Any], records: Sequence[Any], generator: Any = None):
    """``replay_case`` of ``records`` on the phantom they were made on, with ``generator`` (a
    learned one, loaded) used for the records of its name."""
    from tumorsynth.pipelines.synthesize import replay_case

    ct, seg = phantom
    return replay_case(
        ct.array,
        seg.array,
        records,
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        affine=ct.affine,
        generators={generator.name: generator} if generator is not None else None,
    )


def rehashed_edit(folder: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Edit a checkpoint's config.json (``edit`` changes the parsed file in place) and re-record
    its content hash, as a deliberate (or hostile) edit would: what is checked beyond the hash."""
    from tumorsynth.models.checkpoint import config_sha256

    path = folder / "config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    meta["config_sha256"] = config_sha256(meta)
    path.write_text(json.dumps(meta))


def _tuples(settings: dict[str, Any]) -> dict[str, Any]:
    """Config dataclasses hold tuples where YAML gives lists."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}


def ae_settings(images: Sequence[Path], out: Path, steps: int = 60) -> dict[str, Any]:
    """Settings of a tiny autoencoder training on ``images`` (4 mm crops of 16^3)."""
    return {
        "data": {"images": [str(p) for p in images], "val_fraction": 0.5, "val_crops": 2},
        "model": TINY_AE,
        "optim": {
            "max_steps": steps,
            "adv_start": 20,
            "batch_size": 2,
            "lr": 2e-3,
            "warmup_steps": 5,
        },
        "train": {"out_dir": str(out), "log_every": 10, "val_every": 10, "device": "cpu"},
    }


def diffusion_settings(
    autoencoder: Path, case: dict[str, str], out: Path, steps: int = 60
) -> dict[str, Any]:
    """Settings of a tiny denoiser training on the liver tumors of ``case``."""
    return {
        "autoencoder": str(autoencoder),
        "data": {"cases": [case], "label_map": "tumorsynth", "organs": ["liver"], "val_crops": 3},
        "model": TINY_DENOISER,
        "optim": {
            "max_steps": steps,
            "batch_size": 4,
            "lr": 1e-3,
            "ema_decay": 0.9,
            "warmup_steps": 5,
        },
        "train": {"out_dir": str(out), "log_every": 10, "val_every": 20, "device": "cpu"},
    }


def constant_segmentor(
    folder: Path, tumor_bias: float, organ: str = "liver", organs: tuple[str, ...] = ()
) -> Path:
    """A saved segmentor checkpoint (4 mm, 32^3 patches) whose weights are zero: it calls every
    voxel tumor (``tumor_bias`` > 0) or none (< 0), so a filter's verdict is known. With
    ``organs`` it is a several-organ network (background, then each organ and its tumor, as
    ``tumorsynth train`` stores ``classes``) that calls every voxel a tumor of the last organ."""
    import torch

    from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor, save_segmentor

    names = ["background"] + [n for o in (organs or (organ,)) for n in (o, f"{o}_tumor")]
    config = SegmentorConfig(
        patch_size=(32, 32, 32),
        spacing_mm=(4.0, 4.0, 4.0),
        channels=(8, 16),
        out_channels=len(names),
    )
    model = build_segmentor(config)
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)
    ]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        bias = torch.zeros(len(names))
        bias[-1] = float(tumor_bias)
        convs[-1].bias.copy_(bias)
    stored: dict[str, Any] = {
        "model": config.to_dict(),
        "organ": (organs or (organ,))[0],
        "spacing_mm": [4.0, 4.0, 4.0],
        "hu_window": [-100.0, 250.0],
        "patch_size": [32, 32, 32],
    }
    if organs:
        stored["organs"] = list(organs)
        stored["classes"] = {name: c for c, name in enumerate(names)}
    save_segmentor(model, stored, folder)
    return folder


def load_benchmark(name: str) -> Any:
    """``benchmarks/NAME.py`` imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


#: IRCAD 1.7's label ids of the organs the generators are tested in.
P07_MAP = {"liver": 1, "kidney": 5}


def one_tumor_in_p07(p07: tuple[Any, Any], generator: Any, organ: str, **options: Any):
    """One small tumor of ``organ`` (seed 0) in IRCAD 1.7 with ``generator``, and the reach (mm,
    largest per-axis distance) of every changed voxel from the tumor's centre."""
    from tumorsynth.pipelines.synthesize import synthesize_case

    ct, seg = p07
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=P07_MAP,
        organ=organ,
        count=1,
        size="small",
        generator=generator,
        rng=0,
        affine=ct.affine,
        **options,
    )
    changed = np.argwhere(out.image != ct.array)
    center = np.asarray(out.records[0].center_vox) if out.records else np.zeros(3)
    reach = (
        float(np.abs((changed - center) * np.asarray(ct.spacing_mm)).max()) if len(changed) else 0.0
    )
    return out, reach
