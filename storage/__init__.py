"""SQLite implementation of ``bridge.store.Store``."""

from storage.migrations import SchemaTooNew
from storage.sqlite import SqliteStore, open_store

__all__ = ["SchemaTooNew", "SqliteStore", "open_store"]
