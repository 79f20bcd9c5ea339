"""The pool: the served models an architecture may use, their configuration, client, cache and servers."""
