"""`Dictionary.forget` and `compact_file` (erasure): forgotten strings are found by no
lookup, in memory, in the file and after a reload, whether they sat in the hot or the cold
part; every other code keeps its string; a forgotten string sent again gets a new code."""

from __future__ import annotations

import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded.store.dictionary import Dictionary

# (bracketed, so a word found in the file's bytes is that word, not a piece of others)
WORDS = st.lists(st.text(st.characters(blacklist_characters="<>\x01", blacklist_categories=["Cs"]),
                         max_size=8).map(lambda t: f"<{t}>"),
                 min_size=1, max_size=40, unique=True)


@settings(max_examples=30, deadline=None)
@given(words=WORDS, data=st.data(), hot_max=st.integers(2, 16))
def test_forgotten_strings_leave_memory_and_file(words: list[str], data: st.DataObject,
                                                 hot_max: int) -> None:
    gone = data.draw(st.sets(st.sampled_from(words)))
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/x.dict"
        d = Dictionary(path, hot_max=hot_max)
        codes = d.encode(words)
        d.sync()
        d.lookup_many(words[: len(words) // 2])  # (promotes some cold strings to the dict)
        doomed = np.array([codes[words.index(w)] for w in gone], dtype=np.int64)
        prepared = d.prepare_forget(doomed) if data.draw(st.booleans()) else None
        if prepared is not None and data.draw(st.booleans()):
            d.encode([f"<\x01late {i}>" for i in range(hot_max)])  # (chunks frozen meanwhile)
            words = [*words, *(f"<\x01late {i}>" for i in range(hot_max))]
            codes = np.append(codes, np.arange(len(codes), len(words)))
        d.forget(doomed, prepared)
        d.compact_file()
        for reopened in (d, None):
            dd = d if reopened is not None else Dictionary(path, hot_max=hot_max)
            assert len(dd) == len(words)
            got = dd.lookup_many(words).tolist()
            assert got == [-1 if w in gone else int(c) for w, c in zip(words, codes,
                                                                         strict=True)]
            kept = [i for i, w in enumerate(words) if w not in gone]
            assert dd.decode(codes[kept]).tolist() == [words[i] for i in kept]
            if dd is not d:
                dd.close()
        with open(path, "rb") as f:
            raw = f.read()
        for w in gone:
            assert w.encode() not in raw
        again = sorted(gone)
        if again:
            new = d.encode(again)
            assert (new >= len(words)).all()
            assert d.lookup_many(again).tolist() == new.tolist()
        d.close()
