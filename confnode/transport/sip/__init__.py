"""SIP for confnode: a sans-IO message layer (this package's core) and the layers built on it.

Import from the concept modules (``message``, ``headers``, ``uri``, ``framing``, ``errors``); this
file stays free of re-exports so several modules can be added to the package independently.
"""
