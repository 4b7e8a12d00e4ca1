"""OpenSSL knobs Python's ``ssl`` module does not expose, for the node's TLS listeners.

The listeners themselves are built from a security profile (``confnode.security.profiles``);
this module holds the pieces that reach below Python: restricting the key-exchange groups and
setting the TLS 1.3 suites (Python < 3.15 has no setter for either). ``https_server_context``
stays as the HTTPS listener's entry point.

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

# OpenSSL 3.5 added the ML-KEM hybrids, among them the one Mozilla lists first.
_GROUPS_SINCE_OPENSSL_3_5 = frozenset({"X25519MLKEM768", "SecP256r1MLKEM768",
                                       "SecP384r1MLKEM1024"})


def https_server_context(cert_path: Path, key_path: Path,
                         profile: str = "modern") -> ssl.SSLContext:
    """A server context for the HTTPS listener, built from the named security profile."""
    # Imported here: the profiles build on this module's primitives.
    from confnode.security.profiles import ListenerKind, get_profile, server_context

    return server_context(get_profile(profile), ListenerKind.HTTPS, cert_path, key_path)


def available_groups(groups: tuple[str, ...]) -> tuple[str, ...]:
    """``groups`` without those the OpenSSL under Python's ``ssl`` does not know.

    Asked of OpenSSL itself, one group at a time on a scratch context, where the ctypes path
    works; otherwise judged by version (the ML-KEM hybrids need OpenSSL 3.5).
    """
    known: list[str] = []
    for group in groups:
        accepted = _set_groups_via_openssl(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), group)
        if accepted is None:
            accepted = (group not in _GROUPS_SINCE_OPENSSL_3_5
                        or ssl.OPENSSL_VERSION_INFO >= (3, 5))
        if accepted:
            known.append(group)
    return tuple(known)


def set_tls13_suites(context: ssl.SSLContext, suites: tuple[str, ...]) -> tuple[str, ...]:
    """Limit the TLS 1.3 suites of ``context`` (IANA names) through ``SSL_CTX_set_ciphersuites``.

    Returns the TLS 1.3 suites now in force, read back from the context: ``suites`` when the
    call could be made, OpenSSL's default three otherwise (a profile whose list differs then
    shows the difference, and ``confnode audit`` reports it). Raises ValueError when OpenSSL
    rejects the list.
    """
    if not suites:
        raise ValueError("At least one TLS 1.3 suite is needed.")
    set_ciphersuites = getattr(context, "set_ciphersuites", None)
    if set_ciphersuites is not None:  # should a future Python grow one
        set_ciphersuites(":".join(suites))
    else:
        pointer, library = _ssl_ctx_pointer(context)
        if pointer is not None and library is not None:
            function = library.SSL_CTX_set_ciphersuites
            function.restype = ctypes.c_int
            function.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            if function(pointer, ":".join(suites).encode("ascii")) != 1:
                _clear_openssl_errors(library)
                raise ValueError(f"OpenSSL does not accept the TLS 1.3 suites {suites!r}.")
    return tuple(c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3")


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
    """
    pointer, library = _ssl_ctx_pointer(context)
    if pointer is None or library is None:
        return None
    control = library.SSL_CTX_ctrl
    control.restype = ctypes.c_long
    control.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    if control(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, group_list.encode("ascii")) == 1:
        return True
    _clear_openssl_errors(library)
    return False


def _clear_openssl_errors(library: ctypes.CDLL) -> None:
    """Leave no stale entry on OpenSSL's per-thread error queue for the next ssl call to find."""
    clear_errors = library.ERR_clear_error
    clear_errors.restype = None
    clear_errors.argtypes = []
    clear_errors()


def _ssl_ctx_pointer(context: ssl.SSLContext) -> tuple[int | None, ctypes.CDLL | None]:
    """The context's ``SSL_CTX *`` and the library that exports OpenSSL's functions, or Nones.

    CPython's ``_ssl._SSLContext`` object starts with the ``PyObject`` header followed by the
    ``SSL_CTX *`` (Modules/_ssl.c, unchanged since the struct was introduced). We read that
    pointer, then check it is real by asking OpenSSL for the context's options and comparing
    them with what Python reports, before passing it to anything that writes.
    """
    if platform.python_implementation() != "CPython" or ssl.OPENSSL_VERSION_INFO < (1, 1, 1):
        return None, None
    try:
        import _ssl

        if not isinstance(context, _ssl._SSLContext):
            return None, None
        library = ctypes.CDLL(_ssl.__file__)
        get_options = library.SSL_CTX_get_options
        # Looked up now so a library without them is refused before anything is called.
        for name in ("SSL_CTX_ctrl", "SSL_CTX_set_ciphersuites", "ERR_clear_error"):
            getattr(library, name)
    except (ImportError, OSError, AttributeError):
        # No shared _ssl module, or its OpenSSL symbols are not reachable (e.g. Windows).
        return None, None
    # SSL_CTX_get_options returns uint64_t since OpenSSL 3.0, unsigned long in 1.1.1.
    get_options.restype = ctypes.c_uint64 if ssl.OPENSSL_VERSION_INFO >= (3,) else ctypes.c_ulong
    get_options.argtypes = [ctypes.c_void_p]
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or get_options(pointer) != int(context.options):
        return None, None
    return pointer, library
