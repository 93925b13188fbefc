"""The bounds of a transaction that deletes or wipes user data in bulk.

Deleting a project, a workflow or a collection, a pattern's items, and the retention sweep
each go by batches, every batch its own transaction, never one transaction for everything:

* On SQLite, the pages a transaction changes inside its savepoint keep their former content
  in the statement journal until it ends; with ``secure_delete`` those are the pages of every
  deleted body, in clear. ``temp_store = MEMORY`` (sqlite.py) keeps that journal in memory,
  so that a wiped body never reaches a temporary file whose freed disk blocks would keep it;
  a transaction then holds in memory as much as it deletes.
* SQLite's statements run on the coordinator's event loop: one transaction deleting a year
  of history would stop the coordinator for as long as it takes.
* On PostgreSQL, a batch is what the WAL and the row locks take at once.

So a batch takes at most :data:`BATCH_ROWS` rows and :data:`BATCH_BYTES` of dataclip
bodies, collection item values or log messages (work orders go with their runs' logs), read
from the sizes the rows carry (schema 0020), and at least one row: one dataclip is at most
the largest body the coordinator takes (10 MB by default), one run's log is as long as its
job wrote.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BATCH_BYTES", "BATCH_ROWS"]

#: The most bytes of bodies, item values or log messages a batch deletes or wipes (beyond
#: its first row).
BATCH_BYTES: Final = 8 << 20
#: The most rows of a kind one batch takes.
BATCH_ROWS: Final = 500
