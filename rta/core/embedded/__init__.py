"""The embedded engine: the columnar store under the data directory (`store/`) and the numpy
kernels that answer queries over its blocks (time series, counts, HyperLogLog, event lists,
funnels, retention, segments, the per-user event index).

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from rta.core.embedded import filter_eval as _filter_eval
from rta.core.queries import filters as _filters

_filters.register_evaluator(_filter_eval)  # type: ignore[arg-type]
