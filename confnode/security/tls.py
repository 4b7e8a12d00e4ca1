"""The TLS context of the node's HTTPS listener: Mozilla/TLSRef 6.0 *modern*.

TLS 1.3 only; the three TLS 1.3 suites (OpenSSL's default TLS 1.3 list is exactly Mozilla's, and
Python offers no setter for it anyway); the client chooses the suite; key exchange restricted to
X25519, prime256v1 and secp384r1. A later profile system (modern / intermediate, SIP TLS) builds
on these pieces.

Key-exchange groups, as measured on this node's stack (Python 3.11.7, OpenSSL 3.0.19) with real
loopback handshakes against ``openssl s_client -tls1_3 -groups <g>``:

* a default server context accepts X25519, prime256v1, secp384r1, **secp521r1, X448 and
  ffdhe2048** -- the extra ones fail the Mozilla check;
* Python < 3.15 has no ``SSLContext.set_groups``; ``set_ecdh_curve(name)`` calls OpenSSL's
  ``SSL_CTX_set1_groups`` with that *one* group (OpenSSL 3 builds), so it can restrict, but only
  to a single group: with prime256v1 alone every browser pays a HelloRetryRequest round trip
  (Chromium sends only X25519-family key shares), with X25519 alone clients without it fail;
* calling ``SSL_CTX_set1_groups_list`` on the context's own ``SSL_CTX`` through ctypes sets the
  whole list, and the handshakes then accept exactly X25519, prime256v1 and secp384r1.

So ``restrict_key_exchange_groups`` uses ``set_groups`` where Python has it, else the ctypes
call -- only after proving it holds the right ``SSL_CTX`` pointer (OpenSSL's own view of the
options must equal ``ctx.options``) -- else falls back to prime256v1 alone, the group RFC 8446
§9.1 makes mandatory to implement. It returns the groups actually in force so callers (and
``confnode audit``) can report which path was taken.
"""

from __future__ import annotations

import ctypes
import platform
import ssl
from pathlib import Path

# RFC 6797; two years, as in Mozilla's guideline. No "preload": that is an operator's decision.
HSTS_HEADER = "max-age=63072000; includeSubDomains"

# Mozilla/TLSRef 6.0 modern lists X25519MLKEM768 first, but it needs OpenSSL >= 3.5.
MODERN_GROUPS: tuple[str, ...] = ("X25519", "prime256v1", "secp384r1")
FALLBACK_GROUP = "prime256v1"

# From OpenSSL's ssl.h (stable since 1.1.0): SSL_CTX_set1_groups_list is a macro over this.
_SSL_CTRL_SET_GROUPS_LIST = 92


def https_server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context for the HTTPS listener (hand it to uvicorn's ``ssl_context_factory``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Compression enables CRIME-style attacks; TLS 1.3 has none, but say so for any future max.
    context.options |= ssl.OP_NO_COMPRESSION
    # TLS 1.3 has no renegotiation either; the flag keeps it off should a profile allow 1.2.
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    # Python sets server preference by default; Mozilla modern lets the client choose, so a
    # client without AES hardware can pick ChaCha20.
    context.options &= ~int(ssl.OP_CIPHER_SERVER_PREFERENCE)
    restrict_key_exchange_groups(context, MODERN_GROUPS)
    context.load_cert_chain(certfile=cert_path, keyfile=key_path)
    return context


def restrict_key_exchange_groups(context: ssl.SSLContext,
                                 groups: tuple[str, ...]) -> tuple[str, ...]:
    """Limit ``context`` to ``groups`` (OpenSSL names) as far as this Python allows.

    Returns the groups now in force: ``groups`` itself, or ``(FALLBACK_GROUP,)`` when only a
    single group could be set. Raises ValueError when OpenSSL does not know a group.
    """
    if not groups:
        raise ValueError("At least one key-exchange group is needed.")
    group_list = ":".join(groups)
    set_groups = getattr(context, "set_groups", None)
    if set_groups is not None:  # Python 3.15+
        set_groups(group_list)
        return groups
    accepted = _set_groups_via_openssl(context, group_list)
    if accepted is None:
        context.set_ecdh_curve(FALLBACK_GROUP)
        return (FALLBACK_GROUP,)
    if not accepted:
        # A typo in a profile must not quietly leave OpenSSL's full default list in force.
        raise ValueError(f"OpenSSL does not accept the key-exchange groups {group_list!r}.")
    return groups


def _set_groups_via_openssl(context: ssl.SSLContext, group_list: str) -> bool | None:
    """Call ``SSL_CTX_set1_groups_list`` on the context's ``SSL_CTX``.

    Returns whether OpenSSL accepted the list, or None when the call cannot be made safely.

    CPython's ``_ssl._SSLContext`` object starts with the ``PyObject`` header followed by the
    ``SSL_CTX *`` (Modules/_ssl.c, unchanged since the struct was introduced). We read that
    pointer, then check it is real by asking OpenSSL for the context's options and comparing
    them with what Python reports, before passing it to anything that writes.
    """
    if platform.python_implementation() != "CPython" or ssl.OPENSSL_VERSION_INFO < (1, 1, 1):
        return None
    try:
        import _ssl

        if not isinstance(context, _ssl._SSLContext):
            return None
        library = ctypes.CDLL(_ssl.__file__)
        get_options = library.SSL_CTX_get_options
        control = library.SSL_CTX_ctrl
        clear_errors = library.ERR_clear_error
    except (ImportError, OSError, AttributeError):
        # No shared _ssl module, or its OpenSSL symbols are not reachable (e.g. Windows).
        return None
    # SSL_CTX_get_options returns uint64_t since OpenSSL 3.0, unsigned long in 1.1.1.
    get_options.restype = ctypes.c_uint64 if ssl.OPENSSL_VERSION_INFO >= (3,) else ctypes.c_ulong
    get_options.argtypes = [ctypes.c_void_p]
    control.restype = ctypes.c_long
    control.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or get_options(pointer) != int(context.options):
        return None
    if control(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, group_list.encode("ascii")) == 1:
        return True
    # Leave no stale entry on OpenSSL's per-thread error queue for the next ssl call to find.
    clear_errors.restype = None
    clear_errors.argtypes = []
    clear_errors()
    return False
