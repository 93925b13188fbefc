# A raised exception fails the step; the edge `on_job_failure` then runs handle-failure.
import logging


@fn
def check(state):
    count = state["data"]["count"]
    if count == 0:
        raise ValueError("no items to process")
    if count > 100:
        logging.warning("a large batch: %d items", count)
    return state
