"""Secrets never reach the logs.

Capability links, PINs, API tokens, SDES keys and CPR numbers pass through request lines, headers,
JSON bodies and SDP, and any of those may end up in a log line -- uvicorn's access log prints
every request path, and a developer's ``log.debug("offer %s", sdp)`` prints SDES keys. The filter
rewrites each record before any handler formats it, so the redaction holds whatever the format.

The rules are textual and deliberately eager: redacting a harmless value costs a little
debugging, leaking a key or a CPR number cannot be undone. Every rule replaces the secret part
with ``[redacted]`` and is idempotent, so a record passing several filtered handlers (or a
message that already went through once) comes out the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from confnode.security.personal_data import redact_cpr_like

REDACTED = "[redacted]"

DEFAULT_LOGGER_NAMES: tuple[str, ...] = ("", "uvicorn", "uvicorn.access", "uvicorn.error",
                                         "confnode")

# Names whose values are secrets, matched case-insensitively as a whole name or as its ending,
# so "token", "refresh_token", "sso_token", "guest_pin", "hostPin", "client_secret", "api-key"
# all count. The Pexip client API sends its token in a header literally named ``token`` and
# the PIN in a header named ``pin``; VDX sends ``hostPin``/``guestPin`` in JSON.
_SECRET_NAME = r"[A-Za-z0-9_-]*?(?:token|pin|api[_-]?key|apikey|secret|password|passwd)"  # noqa: S105
# Header names whose whole value is a credential, for the forms that carry a header's name and
# value as two separate strings (ASGI scope tuples).
_CREDENTIAL_HEADER = r"(?:" + _SECRET_NAME + r"|(?:proxy-)?authorization|(?:set-)?cookie)"
_NAME_START = r"(?<![A-Za-z0-9_-])"
_NOT_YET = r"(?!\[redacted\])"
# One quoted string in JSON or a Python repr; group ``q`` is the quote character.
_QUOTED = r"""(?P<q>["'])(?:(?!(?P=q))[^\\]|\\.)*(?P=q)"""

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Capability links: /j/<token> (join), /h/<token> (host), /q/<token> (queue link) and
    # /q/tickets/<token> (a patient's ticket). The token is a whole path segment of base64url
    # characters; "/j/[redacted]" itself does not match again.
    (re.compile(r"/q/tickets/[A-Za-z0-9_-]+"), "/q/tickets/" + REDACTED),
    (re.compile(r"/([jhq])/(?!tickets/)[A-Za-z0-9_-]+"), r"/\1/" + REDACTED),
    # JSON and Python dict reprs: "pin": "1234", 'token': 'abc'; and numbers, "hostPin": 1234.
    (re.compile(_NAME_START + r"""(?P<k>["'])(?P<name>""" + _SECRET_NAME + r""")(?P=k)"""
                r"(?P<sep>\s*:\s*)" + _QUOTED, re.IGNORECASE),
     r"\g<k>\g<name>\g<k>\g<sep>\g<q>" + REDACTED + r"\g<q>"),
    (re.compile(_NAME_START + r"""(?P<k>["'])(?P<name>""" + _SECRET_NAME + r""")(?P=k)"""
                r"(?P<sep>\s*:\s*)-?[0-9][0-9.]*", re.IGNORECASE),
     r"\g<k>\g<name>\g<k>\g<sep>\g<k>" + REDACTED + r"\g<k>"),
    # ASGI header tuples as they appear in a logged scope: (b'token', b'abc').
    (re.compile(_NAME_START + r"""(?P<head>b?(?P<k>["'])""" + _CREDENTIAL_HEADER
                + r"""(?P=k)\s*,\s*b?)""" + _QUOTED, re.IGNORECASE),
     r"\g<head>\g<q>" + REDACTED + r"\g<q>"),
    # Keyword reprs (dataclasses, pydantic): host_pin='1234', token="abc".
    (re.compile(_NAME_START + r"(?P<name>" + _SECRET_NAME + r")=(?P<b>b?)" + _QUOTED,
                re.IGNORECASE),
     r"\g<name>=\g<b>\g<q>" + REDACTED + r"\g<q>"),
    # Authorization headers of any scheme, in header, JSON or repr form; the scheme is kept.
    (re.compile(r"""\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)"""
                r"((?:bearer|basic|digest|negotiate|token)\s+)?+" + _NOT_YET + r"""[^\s"',;}]+""",
                re.IGNORECASE),
     r"\1\2" + REDACTED),
    # Cookies: the whole header value, every cookie in it.
    (re.compile(r"""\b((?:set-)?cookie["']?\s*[:=]\s*+["']?+)""" + _NOT_YET + r"""[^\r\n"']+""",
                re.IGNORECASE),
     r"\1" + REDACTED),
    # A bare "Bearer <token>" wherever it appears.
    (re.compile(r"\b(bearer\s+)" + _NOT_YET + r"[A-Za-z0-9._~+/-]+=*", re.IGNORECASE),
     r"\1" + REDACTED),
    # Query strings and form bodies: token=..., pin=..., api_key=... .
    (re.compile(_NAME_START + r"(" + _SECRET_NAME + r")=" + _NOT_YET + r"""[^&\s"'<>#;,]+""",
                re.IGNORECASE),
     r"\1=" + REDACTED),
    # Header lines: "token: abc", "pin: 1234" (the quoted forms were handled above).
    (re.compile(_NAME_START + r"(" + _SECRET_NAME + r")(\s*:\s*)" + _NOT_YET
                + r"""(?![\s"'{])[^\s,;"'}]+""", re.IGNORECASE),
     r"\1\2" + REDACTED),
    # SDES (RFC 4568): a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:len].
    # Only the base64 key material goes; lifetime and MKI are not secret and help debugging.
    (re.compile(r"\b(inline:)" + _NOT_YET + r"[A-Za-z0-9+/]+=*", re.IGNORECASE),
     r"\1" + REDACTED),
    # SDP k= lines (RFC 4566 §5.12) carry keys in the clear.
    (re.compile(r"(?<![A-Za-z0-9])(k=(?:clear|base64):)" + _NOT_YET + r"[^\s\\]+"),
     r"\1" + REDACTED),
    # ICE passwords (a=ice-pwd, RFC 8839) authenticate the session's connectivity checks.
    (re.compile(r"(a=ice-pwd:)" + _NOT_YET + r"[^\s\\]+"), r"\1" + REDACTED),
)


def redact(text: str) -> str:
    """Return ``text`` with every secret and CPR-like number it contains replaced."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return redact_cpr_like(text, REDACTED)


class SecretRedactingFilter(logging.Filter):
    """Rewrites a record's message, exception and stack text before any handler formats it.

    Usable from ``logging.config.dictConfig`` as
    ``{"()": "confnode.security.redaction.SecretRedactingFilter"}``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_message(record)
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_info:
            # Standard formatters print the cached ``exc_text`` and skip ``exc_info``; other
            # consumers (JSON formatters, error trackers) format ``exc_info`` themselves, and
            # the exception's own message may hold the secret. Only the redacted text stays.
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _redact_message(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        # A msg/args mismatch. logging's own error report would print the args verbatim, and an
        # argument out of context ("1234") cannot be told apart from a PIN: withhold them.
        withheld = len(record.args) if isinstance(record.args, tuple | Mapping) else 1
        _replace_message(record, redact(str(record.msg))
                         + f" [{withheld} log argument(s) withheld: they do not fit the format]")
        return
    redacted = redact(message)
    if redacted == message:
        # Nothing secret: leave msg and args as they are, because formatters may rely on args.
        return
    # uvicorn's AccessFormatter builds the access line from ``record.args`` (it unpacks five
    # values) and not from the message, so clearing args would both crash it and bypass the
    # redaction. Redact argument by argument first, and keep that only if the format string
    # itself was clean and the result formats to a clean message; otherwise fall back to the
    # formatted, redacted message without args (an argument that is only a secret in the
    # template's context, like the "1234" of "pin=%s", must not stay behind in ``args``).
    template = str(record.msg)
    arguments = _redacted_arguments(record.args)
    if arguments is not None and redact(template) == template:
        try:
            candidate = template % arguments if arguments else template
        except (TypeError, ValueError, KeyError):
            candidate = None
        if candidate is not None and redact(candidate) == candidate:
            record.msg, record.args = template, arguments
            return
    _replace_message(record, redacted)


def _replace_message(record: logging.LogRecord, message: str) -> None:
    record.msg = message
    record.args = ()
    # uvicorn keeps a coloured copy of the format string and formats it with ``record.args``.
    record.__dict__.pop("color_message", None)


_PLAIN_TYPES = (int, float, bool, type(None))


def _redacted_arguments(args: Any) -> tuple[Any, ...] | dict[str, Any] | None:
    """Arguments with each string redacted, or None if one is of a kind we cannot redact alone."""
    if isinstance(args, tuple):
        redacted = []
        for argument in args:
            if isinstance(argument, str):
                redacted.append(redact(argument))
            elif isinstance(argument, _PLAIN_TYPES):
                redacted.append(argument)
            else:
                return None
        return tuple(redacted)
    if isinstance(args, Mapping):
        mapping: dict[str, Any] = {}
        for key, argument in args.items():
            if isinstance(argument, str):
                mapping[key] = redact(argument)
            elif isinstance(argument, _PLAIN_TYPES):
                mapping[key] = argument
            else:
                return None
        return mapping
    return None


def install_redaction(
    logger_names: Iterable[str] = DEFAULT_LOGGER_NAMES,
) -> SecretRedactingFilter:
    """Attach one redacting filter to the named loggers and to every handler they have now.

    The handlers matter most: a filter on a logger runs only for records logged on that very
    logger, not for records propagated up from its children, so a filter on the root logger
    alone would miss ``confnode.rooms`` and ``uvicorn.error`` records reaching the root's
    handlers. Filters on handlers run for every record the handler emits. uvicorn's access and
    error loggers do not propagate and have their own handlers, hence their names here.

    Handlers added later are not covered: call this after logging is configured (for uvicorn,
    after constructing its ``Config``, which applies ``log_config``), or name the filter in the
    ``dictConfig`` itself. Calling it again is harmless: a target that already has a
    ``SecretRedactingFilter`` does not get a second one.
    """
    redacting = SecretRedactingFilter()
    for name in logger_names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(existing, SecretRedactingFilter) for existing in target.filters):
                target.addFilter(redacting)
    return redacting
