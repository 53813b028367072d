"""Folding a burst of like events into one audit row per key per period, with the count of those it stands for.

A loop of refused requests (denials, dead tokens replayed) is evidence worth one row, not one per request: the
first event of a key is audited at once, the next ones within CODERAUTH_LAST_USED_RESOLUTION are folded, and the
first one after the period writes the next row, whose `folded` counts them. Every event still reaches the log.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from core.locks import transaction_lock

# How long a key's bookkeeping outlives its last audited event: events folded and then followed by none for
# this long are in the application log only.
_STATE_SECONDS = 7 * 86400


def fold_due(key: str) -> int | None:
    """Inside the caller's transaction: None when this event is folded into the key's next row, else the number
    of events folded since the key's previous row (the row is due now).

    The bookkeeping is in the shared cache, read and updated under a lock held until the transaction ends, so
    parallel events on every app process are each counted once; should the cache lose it, the next event is
    audited: more rows, never fewer.
    """
    transaction_lock(key)
    state = cache.get(key)
    now = time.time()
    if state is not None and now - state["audited_at"] < settings.CODERAUTH_LAST_USED_RESOLUTION.total_seconds():
        cache.set(key, {**state, "folded": state["folded"] + 1}, _STATE_SECONDS)
        return None
    cache.set(key, {"audited_at": now, "folded": 0}, _STATE_SECONDS)
    return 0 if state is None else state["folded"]
