"""One small handler per action, grouped by Databricks API area.

Every handler has the same boring signature, ``handler(session, inputs) -> JSON value``: it
receives validated, typed inputs and an ``ActionSession``, calls the API through the session and
shapes the answer. Handlers never build auth, retry, sleep or parse error bodies.
"""
