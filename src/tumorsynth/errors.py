"""Errors that tumorsynth raises for bad input and unwritable output.

Every message names *where* (a file or argument), *what was expected*, *what was found* and, where
one exists, *the fix*, e.g. ``labelsTr/case_012.nii.gz: shape (512, 512, 90) does not match image
(512, 512, 91)``.
"""

from __future__ import annotations

__all__ = ["InputError", "OutputError", "PlacementError", "PlacementWarning", "TumorsynthError"]


class TumorsynthError(Exception):
    """Base class of every error tumorsynth raises on purpose (the CLI turns these into exit 2)."""

    def __init__(self, where: str, message: str, *, fix: str | None = None) -> None:
        self.where = str(where)
        self.fix = fix
        self.message = message
        text = f"{where}: {message}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuildable after pickling, so errors raised in worker processes arrive intact.
        return (type(self), (self.where, self.message), {"fix": self.fix})


class InputError(TumorsynthError, ValueError):
    """An input file or argument is not what tumorsynth needs."""


class PlacementError(InputError):
    """The organ is absent or too small for the requested tumors."""


class PlacementWarning(UserWarning):
    """Fewer tumors than drawn from the organ profile fitted (the ones that fitted were placed)."""


class OutputError(TumorsynthError, OSError):
    """An output cannot be written (not writable, disk full); nothing partial is left behind."""
