"""HyperLogLog: approximate distinct counts in fixed memory, mergeable across blocks.

Used when a caller asks for `approximate=true`: the sketch is built from 64-bit hashes of the
dense user codes (codes are stable for the life of a store), one register array per bucket,
so per-block partial sketches merge with an element-wise max.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_PRECISION = 14  # 16384 registers: 1.04 / sqrt(m) ~= 0.81 % standard error


def hash64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over integers: well-mixed uint64 hashes, fully vectorised."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _leading_zeros(w: np.ndarray) -> np.ndarray:
    """Count of leading zero bits of uint64 values (64 for zero), exact via 32-bit halves."""
    hi = (w >> np.uint64(32)).astype(np.float64)
    lo = (w & np.uint64(0xFFFFFFFF)).astype(np.float64)
    _, e_hi = np.frexp(hi)  # x = m * 2**e with 0.5 <= m < 1, so bit length == e
    _, e_lo = np.frexp(lo)
    return np.where(hi > 0, 32 - e_hi, 64 - e_lo).astype(np.int64)


def standard_error(precision: int = DEFAULT_PRECISION) -> float:
    """Relative standard error of the estimate."""
    return 1.04 / math.sqrt(1 << precision)


class HyperLogLog:
    """`groups` independent sketches (one per time bucket) sharing one register matrix."""

    def __init__(self, groups: int = 1, precision: int = DEFAULT_PRECISION) -> None:
        if not 4 <= precision <= 18:
            raise ValueError("precision must be between 4 and 18")
        self.p = precision
        self.m = 1 << precision
        self.groups = groups
        self.registers = np.zeros(groups * self.m, dtype=np.uint8)

    def add(self, values: np.ndarray, group: np.ndarray | None = None) -> None:
        """Add integer items (hashed here), optionally each into sketch `group[i]`."""
        if not len(values):
            return
        h = hash64(values)
        idx = (h >> np.uint64(64 - self.p)).astype(np.int64)
        w = h << np.uint64(self.p)
        rho = np.minimum(_leading_zeros(w) + 1, 64 - self.p + 1).astype(np.uint8)
        if group is not None:
            idx = group.astype(np.int64) * self.m + idx
        np.maximum.at(self.registers, idx, rho)

    def merge(self, other: HyperLogLog) -> None:
        if other.p != self.p or other.groups != self.groups:
            raise ValueError("can only merge sketches of the same shape")
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimates(self) -> np.ndarray:
        """Estimated distinct count of each sketch (HLL with linear counting for small sets)."""
        reg = self.registers.reshape(self.groups, self.m).astype(np.float64)
        m = float(self.m)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / np.sum(np.exp2(-reg), axis=1)
        zeros = np.count_nonzero(reg == 0, axis=1)
        with np.errstate(divide="ignore"):
            linear = m * np.log(m / np.maximum(zeros, 1))
        small = (raw <= 2.5 * m) & (zeros > 0)
        return np.where(small, linear, raw)

    def estimate(self) -> float:
        """Estimate of the first (usually only) sketch."""
        return float(self.estimates()[0])

    @property
    def standard_error(self) -> float:
        return standard_error(self.p)
