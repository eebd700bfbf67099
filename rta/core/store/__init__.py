"""The embedded columnar event store."""

from rta.core.store.block import Block
from rta.core.store.snapshot import Snapshot
from rta.core.store.store import ColumnStore, IngestResult, StoreConfig

__all__ = ["Block", "ColumnStore", "IngestResult", "Snapshot", "StoreConfig"]
