"""String dictionaries: the hot dict + cold Arrow/hash-index split gives the codes a plain
dict would, across restarts, hash collisions included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded.store import dictionary as dictionary_module
from rta.core.embedded.store.dictionary import Dictionary, HashIndex, string_hashes

TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "a", "é", "user_1", "🙂" * 3]))


def reference_encode(ref: dict[str, int], values: list[str | None]) -> list[int]:
    out = []
    for v in values:
        if v is None:
            out.append(-1)
            continue
        if v not in ref:
            ref[v] = len(ref)
        out.append(ref[v])
    return out


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.one_of(st.none(), TEXT), max_size=30), max_size=12),
       probes=st.lists(TEXT, max_size=20))
def test_codes_match_a_plain_dict_before_and_after_restart(
        tmp_path_factory: pytest.TempPathFactory, batches: list[list[str | None]],
        probes: list[str]) -> None:
    path = str(tmp_path_factory.mktemp("dict") / "users.dict")
    d = Dictionary(path, hot_max=8)  # small: most entries go cold
    ref: dict[str, int] = {}
    for values in batches:
        assert d.encode(values).tolist() == reference_encode(ref, values)
    d.sync()
    assert len(d) == len(ref) and list(d.strings) == list(ref)
    expected = [ref.get(p, -1) for p in probes]
    assert d.lookup_many(probes).tolist() == expected
    assert [d.lookup(p) for p in probes] == expected
    assert len(d._hot) <= 2 * d.hot_max  # cold hits kept in the dict stay bounded
    codes = np.array([-1, *ref.values()], dtype=np.int32)
    assert d.decode(codes).tolist() == [None, *ref]
    d.close()
    again = Dictionary(path, hot_max=8)
    assert again.lookup_many(list(ref)).tolist() == list(ref.values())
    assert [again.strings[i] for i in range(len(ref))] == list(ref)
    again.close()


def test_colliding_hashes_still_get_their_own_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every string hashing alike is the worst case: all but one go to the overflow."""
    monkeypatch.setattr(dictionary_module, "string_hashes",
                        lambda arr: np.full(len(arr), 7, dtype=np.uint64))
    d = Dictionary(None, hot_max=4)
    words = [f"w{i}" for i in range(30)]
    assert d.encode(words).tolist() == list(range(30))
    assert d.encode(words[::-1]).tolist() == list(range(30))[::-1]
    assert d.lookup("w31") == -1 and d.lookup("w17") == 17


def test_string_hashes_depend_on_text_only() -> None:
    words = ["", "a", "ab", "abc", "user_42", "é", "x" * 300]
    arr = pa.array(["pad", *words, "pad"])
    whole = string_hashes(pa.array(words))
    assert string_hashes(arr.slice(1, len(words))).tolist() == whole.tolist()
    assert len(set(whole.tolist())) == len(words) and 0 not in whole
    assert string_hashes(pa.array(words, pa.large_string())).tolist() == whole.tolist()


def test_hash_index_finds_what_it_holds_through_growth() -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(1, 2**63, 50_000, dtype=np.int64).astype(np.uint64))
    index = HashIndex()
    for part in np.array_split(np.arange(len(keys)), 7):
        index.insert(keys[part], part.astype(np.int32))
    assert index.find(keys).tolist() == list(range(len(keys)))
    assert (index.find(keys + np.uint64(1)) == -1).sum() >= len(keys) - 10  # (neighbours)


def test_file_is_rebuilt_when_reopened_after_a_torn_tail(tmp_path: Path) -> None:
    path = str(tmp_path / "sessions.dict")
    d = Dictionary(path, hot_max=3)
    d.encode([f"s{i}" for i in range(10)])
    d.close()
    with open(path, "ab") as f:
        f.write(b"\x05\x00")  # a torn frame header
    again = Dictionary(path, hot_max=3)
    assert len(again) == 10 and again.lookup("s9") == 9
    assert again.encode(["s10"]).tolist() == [10]
    again.close()


def test_array_slices_across_cold_chunks_and_the_hot_part() -> None:
    d = Dictionary(None, hot_max=4)
    words = [f"w{i}" for i in range(14)]  # 3 cold chunks of 4, 2 hot
    d.encode(words)
    for start, stop in [(0, 14), (3, 9), (5, 6), (11, 14), (12, 13), (7, 7)]:
        assert d.array(start, stop).to_pylist() == words[start:stop]


def test_first_format_files_load_and_are_rewritten_batched(tmp_path: Path) -> None:
    """A dictionary written one frame per string (the first format) loads with the same
    codes and is rewritten once in batch frames."""
    from rta.core.embedded.store.records import frame, read_valid

    path = tmp_path / "users.dict"
    path.write_bytes(b"".join(frame(t.encode()) for t in ["u0", "u1", "é"]))
    d = Dictionary(str(path), hot_max=2)
    assert d.lookup_many(["u0", "u1", "é", "x"]).tolist() == [0, 1, 2, -1]
    assert d.encode(["x", "u1"]).tolist() == [3, 1]
    d.close()
    payloads = read_valid(str(path))[0]
    assert payloads[0] == dictionary_module.FILE_HEADER and len(payloads) == 3
    again = Dictionary(str(path))
    assert again.lookup_many(["u0", "u1", "é", "x"]).tolist() == [0, 1, 2, 3]


def test_a_torn_header_starts_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "sessions.dict"
    Dictionary(str(path)).close()
    data = path.read_bytes()
    path.write_bytes(data[:5])  # the header frame torn by a crash before any entry
    d = Dictionary(str(path))
    d.encode(["s0"])
    d.close()
    assert Dictionary(str(path)).lookup("s0") == 0


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.one_of(st.none(), TEXT), max_size=30), max_size=6),
       empty_is_null=st.booleans(), chunks=st.integers(1, 3))
def test_encode_array_gives_the_codes_encode_gives(batches: list[list[str | None]],
                                                   empty_is_null: bool, chunks: int) -> None:
    """An Arrow column's codes (each distinct string looked up once) are `encode`'s for the
    same values as a list, new strings numbered in the same order; with `empty_is_null`
    "" is none, as the validator stores an empty userId."""
    by_list = Dictionary(None, hot_max=8)
    by_array = Dictionary(None, hot_max=8)
    for values in batches:
        as_list = [v or None for v in values] if empty_is_null else values
        step = max(1, -(-len(values) // chunks))
        column = pa.chunked_array([pa.array(values[i:i + step], pa.string())
                                   for i in range(0, len(values), step)] or [], pa.string())
        codes = by_array.encode_array(column, empty_is_null=empty_is_null)
        assert codes.dtype == np.int32
        assert codes.tolist() == by_list.encode(as_list).tolist()
    assert list(by_array.strings) == list(by_list.strings)


def test_cold_lookup_of_an_unencodable_string_finds_nothing(tmp_path: Path) -> None:
    """A lookup text with an unpaired surrogate (a filter value or merge id in valid JSON)
    was never stored: -1, not a UnicodeEncodeError (a 500) once strings are cold."""
    path = str(tmp_path / "users.dict")
    d = Dictionary(path, hot_max=1)
    d.encode([f"u{i}" for i in range(20)])
    d.sync()
    d.close()
    again = Dictionary(path, hot_max=1)
    assert again.lookup_many(["\ud800", "u3", "x\udfff"]).tolist() == [-1, 3, -1]
    assert again.lookup("\ud800") == -1
    again.close()
