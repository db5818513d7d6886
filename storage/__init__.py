"""SQLite implementation of ``bridge.store.Store``."""

from storage.migrations import SchemaTooNew
from storage.sqlite import MEMORY, SqliteStore, open_store

__all__ = ["MEMORY", "SchemaTooNew", "SqliteStore", "open_store"]
