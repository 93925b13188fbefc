"""The values the store takes and gives: frozen, typed, with no database types in them.

One module per store module it serves (``catalog``, ``queue``, ``runs``…) and ``common`` for
what they share. Workflows reuse the plan's ``Job`` and ``Edge`` (fulmen.plan), so that a
stored workflow turns into the plan a worker fetches without a second vocabulary; triggers
carry more than a plan needs (cron expression, webhook reply mode), so they have their own
type here.
"""
