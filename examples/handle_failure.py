# Runs when `check` failed: the error is in state["errors"], keyed by the failed job's id.
import logging


@fn
def handle(state):
    logging.error("handling %s", state.get("errors"))
    state["data"] = {"handled": True}
    return state
