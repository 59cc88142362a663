"""Where the official OpenAPI specs are: `TECHTOUCH_SPECS_DIR`, else the copy in tests/fakes/specs."""

from __future__ import annotations

import os
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "specs"


def specs_dir() -> Path:
    explicit = os.environ.get("TECHTOUCH_SPECS_DIR")
    return Path(explicit) if explicit else BUNDLED
