"""The adult organ priors that a label map is judged against."""

from __future__ import annotations

from tumorsynth.organs import get_profile
from tumorsynth.organs.label_priors import ORGAN_PRIORS


def test_the_hu_priors_contain_the_organ_profiles_expected_range() -> None:
    # the profile's range only warns about the calm interior; the prior's (whole mask)
    # contradicts a map, so it must never be the narrower one
    for organ in ("liver", "kidney", "pancreas"):
        lo, hi = get_profile(organ).expected_parenchyma_hu
        prior_lo, prior_hi = ORGAN_PRIORS[organ].median_hu
        assert prior_lo <= lo and hi <= prior_hi, organ
