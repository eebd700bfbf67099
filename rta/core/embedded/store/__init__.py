"""The embedded columnar event store."""

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.embedded.store.store import ColumnStore, IngestResult, StoreConfig

__all__ = ["Block", "ColumnStore", "IngestResult", "Snapshot", "StoreConfig"]
