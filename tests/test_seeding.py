"""``derive_seed`` pinned to golden values: batch, training and transform seeds come from it, so a
change here changes every tumor a user can replay from an older manifest's seed."""

from __future__ import annotations

import pytest

from tumorsynth._types import derive_seed

#: Taken from derive_seed as it stood at issue 9 (numpy SeedSequence over the parts' words). If one
#: moves, fix derive_seed: never regenerate these.
GOLDEN = [
    ((0,), 6375474604893067239),
    ((1, "case"), 7869175660438292558),
    ((42, "ircadb01_p07", 0), 7140407411605405462),  # a batch: user seed, case id, variant
    ((7, "liver", 3, "diffusion"), 2652886871537632866),
    ((2**40 + 3, "é"), 9040797139352569356),  # an int over 32 bits, a non-ASCII string
    (("",), 5418752975753678035),
    ((-1,), 5280002747448205649),
]


@pytest.mark.parametrize(("parts", "seed"), GOLDEN, ids=[repr(p) for p, _ in GOLDEN])
def test_derive_seed_keeps_its_golden_values(parts: tuple[int | str, ...], seed: int) -> None:
    assert derive_seed(*parts) == seed


def test_derived_seeds_are_63_bit_and_tell_their_parts_apart() -> None:
    seeds = [
        derive_seed(1, "a", 2),
        derive_seed(1, 2, "a"),  # order matters
        derive_seed(1, "a2"),  # a string is not its digits
        derive_seed(1, "a", "2"),
        derive_seed(2, "a", 2),
    ]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
