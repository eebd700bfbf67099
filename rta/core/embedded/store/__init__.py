"""The embedded columnar event store.

Threads: each module states its rule in its docstring; in short, `ColumnStore` ingest and
lifecycle run on one owner thread, snapshots and what they hold are read from any thread.
"""

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.store.store import ColumnStore, IngestResult, StoreConfig

__all__ = ["Block", "ColumnStore", "IngestResult", "Snapshot", "StoreConfig"]
