"""The coordinator (``fulmen server``): the Lightning side of the worker protocol.

Webhooks, cron and the REST API enqueue runs; workers claim them over ``/worker/websocket``
and report back on ``run:<id>`` channels; everything is kept in the store. See app.py for how
the parts fit together.
"""

from fulmen.coordinator.app import build_app, build_coordinator, open_coordinator
from fulmen.coordinator.core import Coordinator, Keys

__all__ = ["Coordinator", "Keys", "build_app", "build_coordinator", "open_coordinator"]
