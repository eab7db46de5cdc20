"""Locate the bundled top-level folders (templates, static, modalities).

In a source checkout or editable install they sit beside the package; a wheel
carries them inside the package under ``_bundled``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (templates, static or modalities)."""
    for candidate in (_PACKAGE_DIR / "_bundled" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"kaptools is missing its {name}/ folder; reinstall the package")
