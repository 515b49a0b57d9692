"""What tests compare folders by: the sha256 of every file (inputs untouched, outputs equal)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_hashes(folder: Path, pattern: str = "**/*") -> dict[str, str]:
    """sha256 of every file under ``folder`` matching ``pattern`` (a :meth:`Path.glob` pattern,
    e.g. ``"*Tr/*"`` for a dataset's cases), as relative POSIX path -> hex digest."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob(pattern))
        if p.is_file()
    }
