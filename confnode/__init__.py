"""confnode: an embeddable conferencing node (ephemeral encrypted rooms, licences, call records)."""

__version__ = "0.1.0"
