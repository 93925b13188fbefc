# The webhook's JSON body is state["data"]. `fn` comes from the `common` adaptor: no import.
@fn
def count(state):
    items = state["data"].get("items", [])
    print(f"{len(items)} items")
    state["data"] = {"count": len(items), "items": items}
    return state
