"""Remembering recent event ids, to drop an event routed already."""

from __future__ import annotations

from services.runtime.recent_ids import RecentIds


def test_recent_ids_remember_what_was_added() -> None:
    """An added id is in the recent ids; one never added is not."""
    recent = RecentIds(3)
    recent.add("evt_1")
    assert "evt_1" in recent
    assert "evt_2" not in recent


def test_recent_ids_evict_the_oldest_beyond_their_size() -> None:
    """Past its size, the least recently added id is forgotten first."""
    recent = RecentIds(2)
    recent.add("evt_1")
    recent.add("evt_2")
    recent.add("evt_1")  # seen again: now the most recent
    recent.add("evt_3")
    assert "evt_2" not in recent
    assert "evt_1" in recent
    assert "evt_3" in recent


def test_recent_ids_of_size_zero_remember_nothing() -> None:
    """A window of 0 turns de-duplication off."""
    recent = RecentIds(0)
    recent.add("evt_1")
    assert "evt_1" not in recent
