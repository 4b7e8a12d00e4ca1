"""The node's one settings tree.

Sources, strongest first: arguments given in code (embedding), ``CONFNODE_*`` environment variables
(nested with ``__``, e.g. ``CONFNODE_LICENCES__PORT=250``), a TOML file (``CONFNODE_CONFIG`` or
``--config``), then the embedded defaults below. The defaults are the "embedded" node: SQLite in a
data directory, a self-signed certificate, listening on loopback only — safe to start anywhere.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from confnode.rooms.dial_plan import DialRule


class HttpSettings(BaseModel):
    """The HTTPS listener (booking API, client API, join links)."""

    host: str = Field("127.0.0.1", description="Address to bind. Loopback by default: a region "
                      "exposes the node deliberately, never by accident.")
    port: int = Field(8443, ge=0, le=65535, description="HTTPS port (0 picks a free port).")
    public_url: str | None = Field(
        None, description="Base URL put into join links, e.g. https://video.region.dk. Defaults to "
        "https://<host>:<port>. Keep it short: practice systems cut long messages, and the guest "
        "link must stay within 60 characters.")
    tls: bool = Field(True, description="Serve HTTPS. Plain HTTP is only for tests and for an "
                      "embedding application that terminates TLS itself.")
    cert_file: Path | None = Field(None, description="PEM certificate; default: a self-signed "
                                   "ECDSA P-256 certificate generated in the data directory.")
    key_file: Path | None = Field(None, description="PEM private key for cert_file.")


class LicenceSettings(BaseModel):
    """Licence pools, as bought (Pexip-style port and audio licences)."""

    port: int = Field(250, ge=0, description="Concurrent calls with video.")
    audio: int = Field(50, ge=0, description="Concurrent audio-only calls (phone, SIP audio).")
    grace_fraction: float = Field(0.10, ge=0, le=1, description="Overdraft above each pool, as a "
                                  "fraction of it (rounded up), so call N+1 is not refused.")
    grace_hours_per_day: float = Field(4.0, ge=0, le=24, description="How long per day the pools "
                                       "may run in overdraft before further calls are refused.")


class RoomDefaults(BaseModel):
    """Defaults for rooms when the booking's template does not say otherwise."""

    open_before_minutes: int = Field(15, ge=0, le=24 * 60, description="The link opens this long "
                                     "before the booked start (VDX: vmrAvailableBefore).")
    close_after_minutes: int = Field(15, ge=0, le=24 * 60, description="The room stays usable this "
                                     "long after the booked end.")
    instant_duration_minutes: int = Field(30, ge=1, le=24 * 60, description="Length of an instant "
                                          "(straks) meeting booked without an end time.")
    max_meeting_hours: int = Field(12, ge=1, le=72, description="Longest bookable meeting.")
    guests_wait_for_host: bool = Field(True, description="Guests wait in the lobby until a host "
                                       "is present.")


class WebRtcSettings(BaseModel):
    """Browser media (DTLS-SRTP over ICE, via aiortc)."""

    ice_servers: list[str] = Field(default_factory=list, description="STUN/TURN URLs offered "
                                   "to clients and used by the node. Default none: the node "
                                   "never contacts a third party on its own.")
    turn_username: str | None = Field(None, description="Username for the TURN servers.")
    turn_credential: str | None = Field(None, description="Credential for the TURN servers.")
    loopback_candidates: bool = Field(True, description="Also offer a 127.0.0.1 host candidate "
                                      "(a node on loopback, clients on the same machine).")


class MediaSettings(BaseModel):
    """What the node produces when it mixes (more than two participants)."""

    width: int = Field(1280, ge=160, le=1920, multiple_of=2, description="Composed picture "
                       "width.")
    height: int = Field(720, ge=90, le=1080, multiple_of=2, description="Composed picture "
                        "height.")
    fps: int = Field(15, ge=5, le=30, description="Composed picture frame rate.")
    video_bitrate: int = Field(1_200_000, ge=100_000, le=8_000_000, description="VP8 bitrate of "
                               "each composed picture (bit/s).")
    audio_bitrate: int = Field(32000, ge=8000, le=128000, description="Opus bitrate of each mix "
                               "(bit/s).")
    layout: str = Field("1:7", description="Default layout (Pexip names: 1:0, 1:7, 1:21, 2:21, "
                        "4:0, 9:0, 16:0, 25:0).")


class DialRuleSettings(BaseModel):
    """One dial-plan rule (``confnode.rooms.dial_plan``); checked when the settings load."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="Regular expression the whole dialled number must match "
                         "(after separators are dropped and a leading 00 becomes +).")
    alias: str = Field(description="The room's numeric alias: digits and the pattern's groups "
                       "(\\1 to \\9, \\g<name>).")

    @model_validator(mode="after")
    def _valid_rule(self) -> DialRuleSettings:
        DialRule(self.pattern, self.alias)  # InvalidDialRule is a ValueError: names the rule
        return self


class SipSettings(BaseModel):
    """SIP video systems, desk phones and gateways dialling rooms by alias. SIP over TLS
    (``sips:``) by default; plain TCP and UDP only when switched on, for trusted networks."""

    enabled: bool = Field(True, description="Run the SIP listeners (the transports switched on "
                          "below) with `confnode serve`.")
    host: str = Field("127.0.0.1", description="Address for SIP signalling and RTP media.")
    tls: bool = Field(True, description="Listen for SIP over TLS, with the node's certificate "
                      "and the security profile's TLS settings. Without a certificate the node "
                      "logs why and does not listen (never falls back to plain TCP).")
    port: int = Field(5061, ge=0, le=65535, description="SIP-TLS port (sips:, 5061; 0 picks a "
                      "free port).")
    tcp: bool = Field(False, description="Also listen for SIP over plain TCP. Off by default: "
                      "signalling in clear; SDES offers on it are refused (488).")
    tcp_port: int = Field(5060, ge=0, le=65535, description="Plain SIP-TCP port.")
    udp: bool = Field(False, description="Also listen for SIP over UDP. Off by default: "
                      "signalling in clear; SDES offers on it are refused (488).")
    udp_port: int = Field(5060, ge=0, le=65535, description="SIP-UDP port.")
    allow_plain_rtp: bool = Field(False, description="Accept unencrypted RTP/AVP. Only for "
                                  "trusted networks; SDES keys are never accepted outside TLS.")
    dial_plan: list[DialRuleSettings] = Field(
        default_factory=list, max_length=1000, description="Gateway rules, tried in order on the "
        "request-URI user of every call: a list of {pattern, alias}, e.g. "
        "{pattern = '\\+45(\\d{8})', alias = '\\1'}. The first rule matching the whole "
        "dialled number gives the room's numeric alias; no match, the user part is used as "
        "dialled. Visual separators (- . ( ) space) are dropped and a leading 00 becomes + "
        "before matching.")

    @model_validator(mode="after")
    def _some_transport(self) -> SipSettings:
        if self.enabled and not (self.tls or self.tcp or self.udp):
            raise ValueError("sip.enabled needs at least one of sip.tls, sip.tcp, sip.udp "
                             "(or set sip.enabled = false)")
        return self


class Settings(BaseSettings):
    """Every setting of a node. ``confnode serve --print-config`` shows the effective values."""

    model_config = SettingsConfigDict(env_prefix="CONFNODE_", env_nested_delimiter="__",
                                      extra="forbid")

    data_dir: Path = Field(Path(".confnode"), description="Where the SQLite database, the node "
                           "secret and the generated certificate live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL. Default sqlite+aiosqlite:///<data_dir>/confnode.db;"
        " use postgresql+asyncpg://… for PostgreSQL.")
    timezone: str = Field("Europe/Copenhagen", description="Calendar days for statistics, daily "
                          "peaks and grace budgets.")
    region: str = Field("default", description="Region this node serves, copied into records.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging threshold. Secrets and CPR-like numbers are redacted at "
        "every level.")
    security_profile: Literal["modern", "intermediate", "bsi"] = Field(
        "modern", description="Cryptography of every listener (HTTPS, SIP-TLS, DTLS-SRTP, "
        "SDES, node links): modern = Mozilla/TLSRef 6.0 modern (TLS 1.3 only); intermediate "
        "adds TLS 1.2 with ECDHE AEAD suites; bsi = BSI TR-02102-2. `confnode audit` checks "
        "the running node against it.")
    http: HttpSettings = Field(default_factory=HttpSettings)
    licences: LicenceSettings = Field(default_factory=LicenceSettings)
    rooms: RoomDefaults = Field(default_factory=RoomDefaults)
    webrtc: WebRtcSettings = Field(default_factory=WebRtcSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    sip: SipSettings = Field(default_factory=SipSettings)
    rate_limit_per_minute: int = Field(60, ge=0, le=100_000, description="Per source address: "
                                       "bookings, client-API token requests (PIN guesses) and "
                                       "queue tickets allowed per minute after the burst; 0 "
                                       "turns the limit off (load tests).")
    rate_limit_burst: int = Field(20, ge=1, le=10_000, description="Requests a source may make "
                                  "at once before the per-minute rate applies.")
    record_retention_days: int = Field(400, ge=1, description="Call records older than this are "
                                       "purged (statistics need 13 months for year-on-year).")
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Timeout for 'call me "
                                           "when "
                                           "ready' notifications to a clinic's webhook.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("CONFNODE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    # Derived values, kept here so every component reads them the same way.

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'confnode.db'}"

    @property
    def public_url(self) -> str:
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        scheme = "https" if self.http.tls else "http"
        host = f"[{self.http.host}]" if ":" in self.http.host else self.http.host
        return f"{scheme}://{host}:{self.http.port}"

    @property
    def open_before(self) -> timedelta:
        return timedelta(minutes=self.rooms.open_before_minutes)

    @property
    def close_after(self) -> timedelta:
        return timedelta(minutes=self.rooms.close_after_minutes)


def describe_settings() -> list[tuple[str, str, Any]]:
    """(dotted name, description, default) for every setting — the documentation table."""
    rows: list[tuple[str, str, Any]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((f"{prefix}{name}", field.description or "", default))

    walk(Settings, "")
    return rows
