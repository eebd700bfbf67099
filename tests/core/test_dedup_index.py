"""The merged dedup index finds exactly the keys of the segments it is told to cover,
through any sequence of segments arriving and leaving (window, retention, quarantine)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded.store.dedup_index import DedupIndex, RecentKeys


class FakeSegment:
    """What the index reads of a segment: its sorted keys (a cached property there)."""

    def __init__(self, keys: list[int]) -> None:
        self.keys = np.sort(np.array(keys, dtype=np.uint64))
        self.__dict__["sorted_ids"] = self.keys


steps = st.lists(st.tuples(
    st.lists(st.integers(0, 300), max_size=40),  # a new segment's keys (may be empty)
    st.lists(st.integers(0, 30), max_size=4),  # positions of live segments to drop
), min_size=1, max_size=25)


@settings(max_examples=50, deadline=None)
@given(steps=steps, probes=st.lists(st.integers(0, 310), min_size=1, max_size=60))
def test_found_is_the_union_of_the_covered_segments(
        steps: list[tuple[list[int], list[int]]], probes: list[int]) -> None:
    index = DedupIndex()
    live: list[Any] = []
    wanted = np.sort(np.array(probes, dtype=np.uint64))
    for keys, drops in steps:
        live.append(FakeSegment(keys))
        for d in sorted({d % len(live) for d in drops}, reverse=True)[:len(live) - 1]:
            live.pop(d)
        index.sync(list(live))
        union = set().union(*(s.keys.tolist() for s in live))
        assert index.found(wanted).tolist() == [p in union for p in wanted.tolist()]
        assert sum(len(level.keys) for level in index.levels) == sum(len(s.keys) for s in live)
        assert len(index.levels) <= 2 + 2 * max(1, len(live)).bit_length()
        for level in index.levels:  # owners point at the segment each key came from
            assert bool(np.all(level.keys[1:] >= level.keys[:-1]))
            for key, owner in zip(level.keys.tolist(), level.owners.tolist(), strict=True):
                assert key in level.segments[owner].keys.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "find"]),
                          st.lists(st.integers(0, 40), max_size=12)), max_size=20))
def test_recent_keys_is_a_set(ops: list[tuple[str, list[int]]]) -> None:
    """RecentKeys answers as a Python set of the keys added and not removed since."""
    recent, reference = RecentKeys(), set[int]()
    for op, values in ops:
        keys = np.array(values, dtype=np.uint64)
        if op == "add":
            recent.add(keys)
            reference |= set(values)
        elif op == "remove":
            recent.remove(keys)
            reference -= set(values)
        wanted = np.sort(keys)
        assert recent.found(wanted).tolist() == [int(k) in reference for k in wanted]
        assert sorted(set(recent.array().tolist())) == sorted(reference)
