"""RQ job functions: thin, take ids, call portal services.

``portal`` enqueues these by dotted path and never imports this package.
"""
