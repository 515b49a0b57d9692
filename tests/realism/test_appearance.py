import numpy as np
import pytest

from tumorsynth.realism import lesion_appearance


def sphere_scan(contrast=-30.0, noise=10.0, blur_mm=0.0, seed=0):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    g = np.indices((80, 80, 80)).astype(np.float32) - 40
    r = np.sqrt((g**2).sum(axis=0))
    lesion = r < 12
    organ = r < 35
    image = np.where(organ, 100.0, -100.0) + np.where(lesion, contrast, 0.0)
    if blur_mm:
        image = ndi.gaussian_filter(image, blur_mm)
    image = image + rng.normal(0, noise, image.shape)
    return image.astype(np.float32), lesion, organ


def test_contrast_and_cnr_are_measured():
    image, lesion, organ = sphere_scan(contrast=-30.0, noise=10.0)
    a = lesion_appearance(image, lesion, organ, (1.0, 1.0, 1.0))
    assert a.contrast_hu == pytest.approx(-30, abs=2)
    assert a.parenchyma_mean_hu == pytest.approx(100, abs=2)
    assert 2.5 < a.cnr < 3.6
    assert a.volume_ml == pytest.approx(4 / 3 * np.pi * 12**3 / 1000, rel=0.05)


def test_blurred_edge_is_wider():
    sharp = lesion_appearance(*sphere_scan(blur_mm=0.0, noise=2.0), (1.0, 1.0, 1.0))
    soft = lesion_appearance(*sphere_scan(blur_mm=2.5, noise=2.0), (1.0, 1.0, 1.0))
    assert soft.edge_width_mm > sharp.edge_width_mm + 2


def test_empty_lesion_is_refused():
    image, lesion, organ = sphere_scan()
    with pytest.raises(ValueError):
        lesion_appearance(image, np.zeros_like(lesion), organ, (1.0, 1.0, 1.0))
