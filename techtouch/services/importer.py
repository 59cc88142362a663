"""The CSV importer's public names, where callers have always found them.

The importer itself is the package techtouch.services.importing (one module per concern).
"""

from __future__ import annotations

from techtouch.services.importing import KINDS, ImportFailed, ImportResult, event_key, import_csv

__all__ = ["KINDS", "ImportFailed", "ImportResult", "event_key", "import_csv"]
