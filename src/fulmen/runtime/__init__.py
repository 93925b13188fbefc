"""The runtime: what runs inside a sandboxed child to execute one whole workflow.

It turns job source into operations, runs them in order threading state, evaluates edges,
captures logs and strips credentials from everything that leaves the child. It knows nothing
of processes or sockets; the sandbox hands it a payload and an ``emit`` function.
"""
