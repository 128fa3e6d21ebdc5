"""Storage: the only package that imports SQLAlchemy."""

from hub.store._db import Store, StoreClosed, database_unavailable, lost_to_a_concurrent_change
from hub.store.events import Journal
from hub.store.ingest import DeliveryOutcome, store_group, store_profile

__all__ = [
    "DeliveryOutcome",
    "Journal",
    "Store",
    "StoreClosed",
    "database_unavailable",
    "lost_to_a_concurrent_change",
    "store_group",
    "store_profile",
]
