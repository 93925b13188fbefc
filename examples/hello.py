# A Fulmen job: each top-level operation is a step, run in order, each receiving the state
# the previous one returned. `fn`, `each`, `merge`, … come from the `common` adaptor; no import.
import datetime

print("hello from a sandboxed child")


@fn
def greet(state):
    name = state["data"].get("name", "world")
    state["data"]["greeting"] = f"Hello, {name}!"
    return state


each("$.data.items[*]", fn(lambda state: print("item", state["index"], state["data"])))


@fn
async def stamp(state):
    state["data"] = {"greeting": state["data"]["greeting"], "at": datetime.date(2026, 1, 1)}
    return state
