"""The observation store: the only package that touches the database (SQLAlchemy 2).

SQLite (WAL journal) by default, PostgreSQL through the same code:

* :mod:`.tables`: the tables as the newest migration leaves them;
* :mod:`.migrate` and ``migrations/``: the schema version, ``spendcast db upgrade``;
* :mod:`.engine`: engines with bounded waits; database failures as two domain errors;
* :mod:`.core`: :class:`Store` (observations, revisions, judgements, listing).
"""

from service.store.core import NOT_STORED, Known, Store, StoredJudgement, StoreStatus
from service.store.engine import StoreOutdated, StoreUnavailable, Timeouts, masked_url
from service.store.migrate import Upgrade, head, upgrade
from service.store.tables import metadata, observations, results

__all__ = [
    "Store",
    "StoredJudgement",
    "StoreStatus",
    "StoreUnavailable",
    "StoreOutdated",
    "Timeouts",
    "Known",
    "NOT_STORED",
    "Upgrade",
    "head",
    "upgrade",
    "masked_url",
    "metadata",
    "observations",
    "results",
]
