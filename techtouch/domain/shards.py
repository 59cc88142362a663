"""Account shards: a stable split of accounts so that runs can work on parts in parallel.

An account's shard depends only on its id (CRC-32, the same on every machine, process and
Python version), so shard 2 of 8 is the same accounts today and tomorrow, and every message
of an account (caps, ladders) stays inside one shard. The database stores each account's
`shard_key` (written with the account), so a sharded run selects its accounts in SQL:
`shard_key % count = index` is the same test as `mask`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


def shard_key(account_id: str) -> int:
    """The account's key for every split: CRC-32 of its id (0 .. 2**32 - 1)."""
    return zlib.crc32(account_id.encode())


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shards must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard must be in 0..{self.count - 1} for {self.count} shards: {self.index}")

    @property
    def everything(self) -> bool:
        return self.count == 1

    def __str__(self) -> str:
        return "all accounts" if self.everything else f"shard {self.index + 1} of {self.count}"

    def mask(self, account_ids: Iterable[str]) -> np.ndarray:
        """True for the accounts in this shard."""
        ids = list(account_ids)
        if self.everything:
            return np.ones(len(ids), dtype=bool)
        codes = np.fromiter((shard_key(i) for i in ids), dtype=np.uint64, count=len(ids))
        in_shard: np.ndarray = codes % self.count == self.index  # numpy types the comparison as Any
        return in_shard

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of a frame indexed by account_id that belong to this shard."""
        return frame if self.everything else frame[self.mask(frame.index)]


ALL = Shard()
