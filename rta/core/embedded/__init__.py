"""The embedded engine: the columnar store under the data directory (`store/`) and the numpy
kernels that answer queries over its blocks (time series, counts, HyperLogLog, event lists,
funnels, retention, segments, the per-user event index)."""
