"""Backend-neutral queries: what is asked (filters, time ranges, query parameters), the result
cache, and the statistics that are pure math. A storage backend answers them; the embedded
engine (`rta.core.embedded`) is the first, a ClickHouse backend will be its sibling.

Thread rule: pure functions over their arguments; any thread.
"""
