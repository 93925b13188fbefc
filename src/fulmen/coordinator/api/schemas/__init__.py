"""The REST API's documents, as pydantic models: the one place pydantic is used (the HTTP
edge, where FastAPI turns them into the OpenAPI document). Each converts to and from the
store's frozen values; no handler passes a pydantic model further in.

One module per router (``catalog``, ``runs``, ``work_orders``, ``webhook_auth``) and
``common`` for what they share: a router imports its own documents and the common ones.
"""
