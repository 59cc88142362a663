"""`techtouch import accounts|contacts|usage|events FILE.csv`: validate a CSV and upsert it, all or nothing.

How it works, and why (each module says more):

* One transaction per file (`pipeline`). Every row is validated; if any is bad, ImportFailed lists
  the problems as `FILE:ROW: column: problem` (ROW is the line in the file, the header being line 1)
  and the transaction is rolled back, so nothing from the file is written (`problems`).
* The file is streamed with pandas in chunks and every distinct value of a column is parsed once by
  techtouch.domain.validators (`csvfile`, `columns`).
* Accounts and contacts referred to are looked up per chunk with batched IN queries (at most
  IN_BATCH ids a query), never by loading every id (`lookups`).
* Upserts by id (accounts, contacts) or by (account_id, date) (usage) through
  techtouch.adapters.db.bulk (`kinds`), and events by a content hash, `event_key` (`events`), so
  importing the same file twice changes nothing.
* Duplicate keys inside one file are errors, found across chunks in 12 bytes a row (`duplicates`).
* Events that (un)suppress a channel recompute the contact's suppressions by the one rule of
  techtouch.domain.suppression (`suppressions`).
"""

from __future__ import annotations

from techtouch.services.importing.columns import KINDS
from techtouch.services.importing.events import event_key, event_key_from_iso
from techtouch.services.importing.pipeline import ImportResult, import_csv
from techtouch.services.importing.problems import ImportFailed

__all__ = ["KINDS", "ImportFailed", "ImportResult", "event_key", "event_key_from_iso", "import_csv"]
