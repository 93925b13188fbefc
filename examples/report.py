@fn
def report(state):
    state["data"] = {"report": f"processed {state['data']['count']} items"}
    return state
