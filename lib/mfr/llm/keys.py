"""Deterministic request keys: the same question to the same model with the same settings has one key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def request_key(
    sample_key: str,
    purpose: str,
    prompt_version: str,
    model: str,
    params: Mapping[str, Any],
    sample_index: int = 0,
) -> str:
    """sha256 over (sample_key, purpose, prompt version, model, sampling params, sample index)."""
    blob = json.dumps(
        [sample_key, purpose, prompt_version, model, dict(sorted(params.items())), int(sample_index)],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class KeySet:
    """Request keys seen, 8 bytes each (a 64-bit prefix of the sha256): the driver remembers every key it
    stored during a call, millions at the 2.3M-row scale, where a set of strings would take ~140 bytes a key.
    Two keys share a prefix with probability ~n²/2⁶⁵ (3e-6 at 10M keys); a clash only makes a result look
    stored already, so it stays in its journal and is asked again by the next run, never lost silently."""

    def __init__(self) -> None:
        import numpy as np

        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()

    @staticmethod
    def _digest(key: str) -> int:
        try:  # request keys are sha256 hex already; any other string is hashed first
            value = int(key[:16], 16) if len(key) == 64 else int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)
        except ValueError:
            value = int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)
        return value - (1 << 64) if value >= 1 << 63 else value  # as a signed 64-bit integer

    def __contains__(self, key: str) -> bool:
        import numpy as np

        d = self._digest(key)
        if d in self._recent:
            return True
        i = int(np.searchsorted(self._sorted, d))
        return i < len(self._sorted) and int(self._sorted[i]) == d

    def add(self, key: str) -> None:
        self._recent.add(self._digest(key))
        if len(self._recent) >= 65536:  # folded into the sorted array now and then: 8 bytes a key
            self._fold()

    def _fold(self) -> None:
        import numpy as np

        merged = np.concatenate([self._sorted, np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))])
        self._sorted = np.unique(merged)
        self._recent = set()

    def __len__(self) -> int:
        self._fold()
        return len(self._sorted)
