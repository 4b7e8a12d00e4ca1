"""Secrets never reach the logs: each kind is redacted, ordinary text and formatting survive."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from confnode.security.redaction import (
    REDACTED,
    SecretRedactingFilter,
    install_redaction,
    redact,
)

TOKEN = "q8Hd2kLx0Pz-_mN4vB7cWa"  # 22 characters, the shape of new_token()
SDES_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


class Collect(logging.Handler):
    """Keeps formatted lines; a formatting error fails the test instead of going to stderr."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def handleError(self, record: logging.LogRecord) -> None:
        raise AssertionError(f"logging failed to format {record.msg!r}")


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger(f"test_redaction.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    handler.addFilter(SecretRedactingFilter())
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


@pytest.mark.parametrize(("text", "expected"), [
    (f"GET /j/{TOKEN} HTTP/1.1", f"GET /j/{REDACTED} HTTP/1.1"),
    (f"https://node.example/h/{TOKEN}?x=1", f"https://node.example/h/{REDACTED}?x=1"),
    (f"/q/{TOKEN}/status", f"/q/{REDACTED}/status"),
    (f"GET /q/tickets/{TOKEN}/events", f"GET /q/tickets/{REDACTED}/events"),
    (f"GET /api/client/v2/conferences/4711/events?token={TOKEN}&x=1",
     f"GET /api/client/v2/conferences/4711/events?token={REDACTED}&x=1"),
    (f"Authorization: Bearer {TOKEN}", f"Authorization: Bearer {REDACTED}"),
    ("authorization: Basic dXNlcjpwYXNz", f"authorization: Basic {REDACTED}"),
    (f'{{"authorization": "Bearer {TOKEN}"}}', f'{{"authorization": "Bearer {REDACTED}"}}'),
    (f"token: {TOKEN}", f"token: {REDACTED}"),
    ("pin: 1234", f"pin: {REDACTED}"),
    ('{"pin": "1234", "display_name": "Alice"}',
     f'{{"pin": "{REDACTED}", "display_name": "Alice"}}'),
    ('{"hostPin": 123456, "guestPin": "4711"}',
     f'{{"hostPin": "{REDACTED}", "guestPin": "{REDACTED}"}}'),
    (f"{{'token': '{TOKEN}', 'role': 'HOST'}}", f"{{'token': '{REDACTED}', 'role': 'HOST'}}"),
    ('{"api_key": "k", "secret": "s", "password": "p"}',
     f'{{"api_key": "{REDACTED}", "secret": "{REDACTED}", "password": "{REDACTED}"}}'),
    ("Booking(subject='Kontrol', host_pin='1234')",
     f"Booking(subject='Kontrol', host_pin='{REDACTED}')"),
    (f"[(b'host', b'node'), (b'token', b'{TOKEN}')]",
     f"[(b'host', b'node'), (b'token', b'{REDACTED}')]"),
    ("Cookie: session=abc; theme=dark", f"Cookie: {REDACTED}"),
    (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}|2^20|1:32",
     f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{REDACTED}|2^20|1:32"),
    ("a=ice-pwd:asd88fgpdd777uzjYhagZg", f"a=ice-pwd:{REDACTED}"),
    ("k=base64:c2VjcmV0", f"k=base64:{REDACTED}"),
    ("patient 010203-1234 called", f"patient {REDACTED} called"),
])
def test_each_kind_of_secret_is_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: several filtered handlers agree


@pytest.mark.parametrize("text", [
    "Room 4711 opened at 2026-11-22T10:00:00+00:00 with 3 participants",
    "Uvicorn running on https://127.0.0.1:8443 (Press CTRL+C to quit)",
    "GET /api/client/v2/conferences/4711/participants HTTP/1.1 200",
    "participant 123e4567-e89b-12d3-a456-426614174000 left: hangup",
    "a=fingerprint:sha-256 AB:CD:EF a=setup:actpass",
    "token count 5, pinned layout 1:7, /jobs/42",
    "Wrong PIN 2 of 3 attempts",
])
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_sdp_in_a_log_line_loses_its_keys_only() -> None:
    sdp = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 5004 RTP/SAVP 0\r\n"
           f"a=crypto:1 AEAD_AES_256_GCM inline:{SDES_KEY}\r\n"
           f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY[:40]}|2^31\r\n")
    redacted = redact(sdp)
    assert SDES_KEY[:20] not in redacted
    assert redacted.count(f"inline:{REDACTED}") == 2
    assert "m=audio 5004 RTP/SAVP 0\r\n" in redacted
    assert "|2^31" in redacted


def test_filter_formats_then_redacts_the_message(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    logger.info("offer for %s: %s", "room 4711", f"pin={'12' + '34'}")
    assert handler.lines == [f"offer for room 4711: pin={REDACTED}"]
    # The secret straddled the format string and an argument: only the formatted text is safe.
    logger.info("token=%s", TOKEN)
    assert handler.lines[-1] == f"token={REDACTED}"
    assert handler.records[-1].args == ()


def test_mapping_arguments_of_a_secret_placeholder_are_dropped(
        logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    logger.info("pin=%(pin)s room=%(room)s", {"pin": "4711", "room": "r1"})
    assert handler.lines == [f"pin={REDACTED} room=r1"]
    assert handler.records[0].args == ()
    assert "4711" not in repr(handler.records[0].__dict__)


def test_clean_records_keep_their_arguments(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    logger.info("room %s has %d participants", "4711", 3)
    assert handler.lines == ["room 4711 has 3 participants"]
    assert handler.records[0].msg == "room %s has %d participants"
    assert handler.records[0].args == ("4711", 3)


def test_uvicorn_access_lines_are_redacted_and_still_format() -> None:
    # uvicorn's AccessFormatter unpacks exactly five args and ignores msg; clearing args would
    # crash it, leaving them unredacted would print the capability link.
    logger = logging.getLogger("test_redaction.uvicorn_access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Collect(AccessFormatter(fmt='%(client_addr)s - "%(request_line)s" %(status_code)s',
                                      use_colors=False))
    logger.addHandler(handler)
    try:
        install_redaction([logger.name])
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET",
                    f"/j/{TOKEN}?token={TOKEN}", "1.1", 200)
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
    assert handler.lines == [
        f'127.0.0.1:50000 - "GET /j/{REDACTED}?token={REDACTED} HTTP/1.1" 200 OK']
    assert TOKEN not in handler.lines[0]


def test_exception_text_is_redacted(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    secret = TOKEN[:11] + TOKEN[11:]  # built at run time, so no source line shows it
    try:
        raise ValueError(f"could not open /j/{secret} with pin: {'47' + '11'}")
    except ValueError:
        logger.exception("join failed")
    [line] = handler.lines
    assert line.startswith("join failed\nTraceback")
    assert f"ValueError: could not open /j/{REDACTED} with pin: {REDACTED}" in line
    assert secret not in line
    assert "4711" not in line
    # Nothing unredacted is left on the record for other consumers to format.
    assert handler.records[0].exc_info is None
    assert secret not in (handler.records[0].exc_text or "")


def test_stack_info_is_redacted(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "stack", (), None,
                               sinfo=f"Stack (most recent call last):\n  /j/{TOKEN}")
    logger.handle(record)
    assert TOKEN not in handler.lines[0]
    assert f"/j/{REDACTED}" in handler.lines[0]


def test_a_broken_format_does_not_leak_or_raise(logged: tuple[logging.Logger, Collect]) -> None:
    logger, handler = logged
    logger.info("pin=%s and %s", "1234")  # one argument short
    assert handler.lines == [
        f"pin={REDACTED} and %s [1 log argument(s) withheld: they do not fit the format]"]


def test_install_covers_records_propagated_from_child_loggers() -> None:
    parent = logging.getLogger("test_redaction_parent")
    child = logging.getLogger("test_redaction_parent.rooms")
    parent.propagate = False
    parent.setLevel(logging.INFO)
    handler = Collect()
    parent.addHandler(handler)
    try:
        # A filter on the parent *logger* alone does not see the child's records ...
        parent.addFilter(SecretRedactingFilter())
        child.info("pin=%s", "4711")
        assert handler.lines == ["pin=4711"]
        parent.filters.clear()
        # ... which is why install_redaction also filters the handlers.
        install_redaction(["test_redaction_parent"])
        child.info("pin=%s", "4711")
        parent.info("token=%s", TOKEN)
        assert handler.lines[1:] == [f"pin={REDACTED}", f"token={REDACTED}"]
        assert any(isinstance(f, SecretRedactingFilter) for f in parent.filters)
        assert any(isinstance(f, SecretRedactingFilter) for f in handler.filters)
        # Installing twice adds no second filter.
        install_redaction(["test_redaction_parent"])
        assert sum(isinstance(f, SecretRedactingFilter) for f in handler.filters) == 1
    finally:
        parent.removeHandler(handler)
        parent.filters.clear()


def test_install_defaults_name_the_uvicorn_loggers() -> None:
    root = logging.getLogger()
    names = ["", "uvicorn", "uvicorn.access", "uvicorn.error", "confnode"]
    before = {name: list(logging.getLogger(name).filters) for name in names}
    try:
        installed = install_redaction()
        for name in names:
            assert installed in logging.getLogger(name).filters or any(
                isinstance(f, SecretRedactingFilter) for f in logging.getLogger(name).filters)
    finally:
        for name, filters in before.items():
            logging.getLogger(name).filters[:] = filters
        for handler in root.handlers:
            handler.filters[:] = [f for f in handler.filters
                                  if not isinstance(f, SecretRedactingFilter)]
