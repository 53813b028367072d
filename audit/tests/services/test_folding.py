"""fold_due: one audit row per key per CODERAUTH_LAST_USED_RESOLUTION, the next one counting those folded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache

from audit.folding import fold_due

pytestmark = pytest.mark.django_db


def test_first_event_is_due_the_next_ones_fold_and_the_next_row_counts_them(settings):
    assert fold_due("test_fold_a") == 0
    assert [fold_due("test_fold_a") for _ in range(3)] == [None, None, None]
    settings.CODERAUTH_LAST_USED_RESOLUTION = timedelta(0)  # the period has passed
    assert fold_due("test_fold_a") == 3
    assert fold_due("test_fold_a") == 0


def test_each_key_has_its_own_period():
    assert fold_due("test_fold_b") == 0
    assert fold_due("test_fold_c") == 0
    assert fold_due("test_fold_b") is None


def test_lost_bookkeeping_means_another_row_never_a_missing_one():
    assert fold_due("test_fold_d") == 0
    cache.delete("test_fold_d")
    assert fold_due("test_fold_d") == 0


def test_fold_due_refuses_to_run_outside_a_transaction(transactional_db):
    """The lock must be held until the row is written, so the caller's transaction is required."""
    with pytest.raises(RuntimeError):
        fold_due("test_fold_e")
