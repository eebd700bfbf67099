"""JSON as RFC 8259 defines it: the standard library's parser, without NaN and Infinity.

`json.loads` accepts the bare words NaN, Infinity and -Infinity. An event holding one would be
stored without that property (no JSON number can represent it) or sent on as null by a
client, a silent loss. Every place that parses JSON from outside uses `loads` here instead, so
such input is refused as invalid JSON, with its position, like any other syntax error.

Thread rule: pure; any thread.
"""

from __future__ import annotations

import json
from typing import Any


class _NonFinite(Exception):
    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


def _refuse(word: str) -> Any:
    raise _NonFinite(word)


_INFINITIES = (float("inf"), float("-inf"))


def _finite_float(text: str) -> float:
    """A JSON number beyond a double's range (1e999) would read as infinity and be dropped
    like NaN: refused the same way."""
    value = float(text)
    if value in _INFINITIES:
        raise _NonFinite(text)
    return value


def loads(raw: str | bytes | bytearray) -> Any:
    """`json.loads`, raising `json.JSONDecodeError` on NaN, Infinity and -Infinity (and
    numbers that overflow to them), and on
    input the parser cannot hold (nesting past the recursion limit, a number of more than
    4,300 digits), which `json` reports as RecursionError or a bare ValueError."""
    try:
        return json.loads(raw, parse_constant=_refuse, parse_float=_finite_float)
    except _NonFinite as exc:
        text = _text(raw)
        what = "is not valid JSON" if exc.word[-1:].isalpha() else \
            "is beyond the range of a JSON number (a double)"
        raise json.JSONDecodeError(f"{exc.word} {what} (send null or leave the key out)",
                                   text, max(text.find(exc.word), 0)) from None
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nest too deeply", _text(raw), 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # (int('...' * 4301): the interpreter's digit limit)
        raise json.JSONDecodeError(f"a value cannot be read: {exc}", _text(raw), 0) from None


def _text(raw: str | bytes | bytearray) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
