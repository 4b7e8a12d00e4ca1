"""The SDP answerer: how the node answers an offer from a SIP endpoint (RFC 3264).

The node never offers to SIP endpoints; it answers their INVITEs and re-INVITEs. Everything
here is a pure function of the offer, the node's policy and caller-supplied ports and
randomness, so every rule below is tested with literal offers and exact answers.

Security (REFERENCES §4):

* ``RTP/SAVP``/``RTP/SAVPF`` with SDES keys only when the SIP hop is TLS (``over_tls``): SDES
  keys travel in the SDP in clear, so over plain UDP/TCP they are as good as published. Such an
  offer is refused (488), never downgraded.
* ``RTP/AVP``/``RTP/AVPF`` lines are unencrypted media, refused unless ``allow_plain_rtp``. An
  ``RTP/AVP`` line that carries ``a=crypto`` over TLS is "best-effort SRTP" (what baresip's
  ``mediaenc=srtp`` and linphone's optional SRTP send): it is answered with SRTP, keeping the
  offered profile as RFC 3264 requires.
* ``UDP/TLS/RTP/SAVP(F)`` (DTLS-SRTP, RFC 5763/5764) is answered when the caller passes the
  node's certificate ``dtls_fingerprint``; the DTLS layer gets the peer's fingerprints and the
  roles. We answer ``a=setup:passive`` (the peer starts the handshake) unless the offer is
  passive, then ``active`` (why passive: :mod:`confnode.transport.rtp.dtls_srtp`). The keys
  never travel in the SDP, so DTLS-SRTP is answered over any SIP transport. No ICE
  attributes are answered: a SIP endpoint that offered ICE falls back to the m=/c= addresses,
  since an answer without ICE attributes means no ICE (RFC 8445). WebRTC peers are served by
  the WebRTC stack, not by this module.
* The SDES suite is the first of *our* preference order (:class:`SdesSuite`) among the offered
  lines that are usable (see :mod:`confnode.transport.sip.sdes` for what is refused and why).

Codecs: per m-line the first offered codec the node supports wins (RFC 3264 §6.1 -- the offer's
order is the offerer's preference; ``supported_*`` only says what we can do), with one rule of
our own for audio: wideband before narrowband. An offered Opus or G.722 is taken over a G.711
listed ahead of it (many phones and room systems list PCMU first out of habit), because a
consultation is about hearing the patient, and G.722 costs no more bandwidth than G.711 (64
kbit/s both). Within a band the offer's order stands. The answer names
exactly one codec, plus ``telephone-event`` (RFC 4733) at the same clock rate if offered, so the
endpoint never switches codec mid-call and the mixer has one decoder per participant.

H.264 (RFC 6184 §8.2.2): a payload type is usable if its packetization-mode is 0 (single NAL
unit: the encoder then keeps every NAL unit within one packet, see
:mod:`confnode.transport.h264`) or 1 (non-interleaved),
and its profile is one we support. The answer keeps the offered profile (in libwebrtc's
canonical profile-level-id spelling, e.g. ``42c0..`` becomes ``42e0..``) and packetization-mode.
Its level: without ``level-asymmetry-allowed=1`` both directions use one level, the lower of the
offer's and ours, so the answer never exceeds the offer. With ``level-asymmetry-allowed=1`` in
the offer (RFC 6184 §8.1, as libwebrtc does) each side's level is what *it* can receive: the
answer states our own maximum (it may exceed the offer's) and we send at most the offer's level
(:attr:`H264Parameters.send_level`).

RTCP: ``a=rtcp-mux`` is answered when offered (RFC 5761) and RTCP then shares the RTP port;
otherwise RTCP goes to ``a=rtcp`` (RFC 3605) or RTP port + 1, and our answer names our RTCP port
with ``a=rtcp`` when it is not our RTP port + 1.

Directions are mirrored (RFC 3264 §6.1). A held offer -- ``sendonly``/``inactive``, or the RFC
2543 ``c=0.0.0.0`` -- is answered ``recvonly``/``inactive``: the node never sends to 0.0.0.0.

Lines the node does not take are rejected in place with port 0, keeping their order (RFC 3264
§6): other media types (BFCP, T.140 text, T.38), a second video line and presentation video
(``a=content:slides``), unknown transports, lines without a common codec or an acceptable
security setting, and lines the caller allocated no ports for. If no line is accepted the whole
offer is refused with :class:`NotAcceptable` (488) naming the first reason.

Re-INVITEs (:func:`renegotiate`): an offer equal to the previous one gets the previous answer
unchanged (a session refresh). Otherwise the node keeps, per m-line, its ports (always), its
codec (if the previous codec is still offered, even if no longer first -- no needless switch),
and its SDES key (if the offer still carries the line it answered last time, same suite and same
key; when the peer rekeys or drops that suite, we rekey too). The answer's ``o=`` version goes
up by one only if the answer changed (RFC 3264 §8). A re-offer with fewer m-lines than before is
refused (RFC 3264 §8: m-lines are never removed).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from confnode.errors import InvalidInput
from confnode.transport.sip.sdes import (
    REDACTED,
    CryptoAttribute,
    KeyParam,
    RandomBytes,
    SdesSuite,
    choose_crypto,
    generate_key,
)
from confnode.transport.sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Fingerprint,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)

DEFAULT_AUDIO: tuple[str, ...] = ("opus", "G722", "PCMU", "PCMA")
DEFAULT_VIDEO: tuple[str, ...] = ("H264", "VP8")
#: Audio codecs preferred over whatever narrowband codec an offer lists first (module docstring).
WIDEBAND_AUDIO = frozenset({"opus", "g722"})
#: Level 3.1 (level_idc 31): 1280x720 at 30 fps, what the node's encoders produce.
DEFAULT_H264_MAX_LEVEL = 31
#: The audio packet time the node asks for (and sends unless the offer's ``a=ptime`` differs).
ANSWER_PTIME_MS = 20
#: RTCP feedback (RFC 4585, RFC 5104) the node's video path acts on.
SUPPORTED_FEEDBACK = frozenset({"nack", "nack pli", "ccm fir"})
#: RFC 4733 events the node receives: the DTMF digits 0-9, *, #, A-D.
TELEPHONE_EVENTS = "0-15"


class NotAcceptable(InvalidInput):
    """The offer cannot be answered: send ``status`` (488 Not Acceptable Here).

    ``warning`` is the RFC 3261 §20.43 warn-code for a ``Warning`` header. The reason is a
    fixed phrase from this module: it never holds offer text, so never a key.
    """

    code = "sdp_not_acceptable"

    def __init__(self, status: int, reason: str, *, warning: int = 399) -> None:
        super().__init__(reason, status=status, warning=warning)
        self.status = status
        self.reason = reason
        self.warning = warning


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class MediaSecurity(StrEnum):
    PLAIN = "plain"
    SDES = "sdes"
    DTLS_SRTP = "dtls-srtp"


class RejectReason(StrEnum):
    """Why one m-line was answered with port 0."""

    OFFERER_REJECTED = "the offer itself disabled this line (port 0)"
    MEDIA_TYPE = "media type not supported"
    PRESENTATION = "presentation video is not supported"
    EXTRA_VIDEO = "only one video stream is supported"
    TRANSPORT = "transport protocol not supported"
    SDES_WITHOUT_TLS = "SDES keys are only accepted over SIP/TLS"
    PLAIN_RTP = "unencrypted RTP is not allowed"
    NO_CRYPTO_SUITE = "no acceptable SRTP crypto suite offered"
    NO_DTLS = "DTLS-SRTP is not available"
    NO_FINGERPRINT = "DTLS-SRTP offered without a certificate fingerprint"
    NO_CODEC = "no common codec"
    NO_PORT = "no local port allocated"
    NO_ADDRESS = "no connection address"

    @property
    def warning(self) -> int:
        """RFC 3261 §20.43 warn-code: 302 address, 303 transport, 304 media type, 305 format."""
        match self:
            case RejectReason.MEDIA_TYPE | RejectReason.PRESENTATION | RejectReason.EXTRA_VIDEO:
                return 304
            case RejectReason.TRANSPORT | RejectReason.PLAIN_RTP | RejectReason.NO_DTLS:
                return 303
            case RejectReason.NO_CODEC:
                return 305
            case RejectReason.NO_ADDRESS:
                return 302
            case _:
                return 399


class H264Profile(StrEnum):
    """H.264 profiles as RFC 6184 Table 5 derives them from profile_idc and profile-iop."""

    CONSTRAINED_BASELINE = "constrained-baseline"
    BASELINE = "baseline"
    MAIN = "main"
    EXTENDED = "extended"
    CONSTRAINED_HIGH = "constrained-high"
    HIGH = "high"


DEFAULT_H264_PROFILES = frozenset({
    H264Profile.CONSTRAINED_BASELINE, H264Profile.BASELINE, H264Profile.MAIN,
    H264Profile.CONSTRAINED_HIGH, H264Profile.HIGH,
})

#: Level 1b has no level_idc of its own (11 plus constraint_set3); like libwebrtc, we call it 0.
H264_LEVEL_1B = 0
_H264_LEVELS = frozenset({H264_LEVEL_1B, 10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42,
                          50, 51, 52})
# (profile_idc, profile-iop bit pattern, profile): RFC 6184 Table 5, in libwebrtc's order.
_H264_PATTERNS: tuple[tuple[int, str, H264Profile], ...] = (
    (0x42, "x1xx0000", H264Profile.CONSTRAINED_BASELINE),
    (0x4D, "1xxx0000", H264Profile.CONSTRAINED_BASELINE),
    (0x58, "11xx0000", H264Profile.CONSTRAINED_BASELINE),
    (0x42, "x0xx0000", H264Profile.BASELINE),
    (0x58, "10xx0000", H264Profile.BASELINE),
    (0x4D, "0x0x0000", H264Profile.MAIN),
    (0x58, "00xx0000", H264Profile.EXTENDED),
    (0x64, "00000000", H264Profile.HIGH),
    (0x64, "00001100", H264Profile.CONSTRAINED_HIGH),
)
# What the answer writes for each profile (libwebrtc's canonical profile_idc + profile-iop).
_H264_CANONICAL: MappingProxyType[H264Profile, str] = MappingProxyType({
    H264Profile.CONSTRAINED_BASELINE: "42e0", H264Profile.BASELINE: "4200",
    H264Profile.MAIN: "4d00", H264Profile.EXTENDED: "5800",
    H264Profile.CONSTRAINED_HIGH: "640c", H264Profile.HIGH: "6400",
})
# Level 1b spelled with constraint_set3 (RFC 6184 §8.1); High profiles have no such spelling.
_H264_CANONICAL_1B: MappingProxyType[H264Profile, str] = MappingProxyType({
    H264Profile.CONSTRAINED_BASELINE: "42f00b", H264Profile.BASELINE: "42100b",
    H264Profile.MAIN: "4d100b", H264Profile.EXTENDED: "58100b",
})

# Codecs whose RTP clock rate is fixed by their payload format; G.722 says 8000 though it
# samples at 16 kHz (an RFC 1890 mistake kept by RFC 3551 §4.5.2).
_CODEC_CLOCK_RATES: MappingProxyType[str, int] = MappingProxyType({
    "opus": 48000, "g722": 8000, "pcmu": 8000, "pcma": 8000, "g729": 8000, "ilbc": 8000,
    "h264": 90000, "vp8": 90000, "vp9": 90000, "av1": 90000, "h263": 90000,
})
# Payload formats that are never the stream's codec: events, comfort noise, redundancy, FEC.
_NOT_A_CODEC = frozenset({"telephone-event", "cn", "red", "ulpfec", "flexfec-03", "rtx"})
_SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
_DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})


class TransportAddress(NamedTuple):
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class H264Parameters:
    """The H.264 agreement; levels are level_idc values (31 = 3.1, :data:`H264_LEVEL_1B` = 1b)."""

    profile: H264Profile
    packetization_mode: int
    level_asymmetry_allowed: bool
    receive_level: int
    send_level: int
    profile_level_id: str


@dataclass(frozen=True, slots=True)
class NegotiatedCodec:
    """The one codec of a media stream.

    ``fmtp`` is what our answer declared (what we receive); ``remote_fmtp`` is the offer's for
    the same payload type (constraints on what we send: max-fs, max-mbps, sprop-parameter-sets).
    """

    name: str
    payload_type: int
    clock_rate: int
    channels: int
    fmtp: str | None
    remote_fmtp: str | None
    feedback: tuple[str, ...] = ()
    h264: H264Parameters | None = None


@dataclass(frozen=True, slots=True, repr=False)
class SrtpKeys:
    """SDES keying for one stream: ``local_key`` protects what we send, ``remote_key`` what we
    receive. Both are master key || salt, as a pylibsrtp ``Policy`` takes them.
    """

    suite: SdesSuite
    tag: int
    local_key: bytes
    remote_key: bytes

    def __repr__(self) -> str:
        return (f"SrtpKeys(suite={self.suite.value!r}, tag={self.tag}, local_key={REDACTED}, "
                f"remote_key={REDACTED})")

    @property
    def srtp_profile(self) -> int:
        return self.suite.srtp_profile


@dataclass(frozen=True, slots=True)
class DtlsParameters:
    """What the DTLS-SRTP layer needs: the peer's certificate fingerprints and the roles.

    ``local_setup`` ``passive`` means the node is the DTLS server (RFC 5763 §5).
    """

    remote_fingerprints: tuple[Fingerprint, ...]
    remote_setup: str
    local_setup: str
    local_fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """One accepted m-line, from the node's point of view.

    ``direction`` is our answer (``sendonly`` means the node sends and does not receive);
    ``remote_ptime`` is the offer's ``a=ptime``: the packet time to send with.
    """

    index: int
    kind: MediaKind
    proto: str
    mid: str | None
    security: MediaSecurity
    remote_rtp: TransportAddress
    remote_rtcp: TransportAddress
    rtcp_mux: bool
    local_ports: tuple[int, int]
    codec: NegotiatedCodec
    telephone_event_pt: int | None
    direction: Direction
    remote_direction: Direction
    remote_ptime: int | None
    remote_max_kbps: int | None
    srtp: SrtpKeys | None = None
    dtls: DtlsParameters | None = None

    @property
    def local_rtp_port(self) -> int:
        return self.local_ports[0]

    @property
    def local_rtcp_port(self) -> int:
        """Where we receive RTCP: the RTP port when multiplexed (RFC 5761)."""
        return self.local_ports[0] if self.rtcp_mux else self.local_ports[1]

    @property
    def on_hold(self) -> bool:
        """The peer put this stream on hold: it no longer wants what we send."""
        return not self.direction.sends


@dataclass(frozen=True, slots=True)
class RejectedMedia:
    index: int
    media: str
    reason: RejectReason


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerSettings:
    """The node's side of the negotiation, kept so a re-INVITE is answered by the same rules."""

    local_address: str
    allow_plain_rtp: bool = False
    supported_audio: tuple[str, ...] = DEFAULT_AUDIO
    supported_video: tuple[str, ...] = DEFAULT_VIDEO
    sdes_suites: tuple[SdesSuite, ...] = tuple(SdesSuite)
    h264_profiles: frozenset[H264Profile] = DEFAULT_H264_PROFILES
    h264_max_level: int = DEFAULT_H264_MAX_LEVEL
    dtls_fingerprint: Fingerprint | None = None
    video_max_kbps: int | None = None
    username: str = "confnode"
    session_name: str = "confnode"

    def __post_init__(self) -> None:
        if not self.local_address or any(c.isspace() for c in self.local_address):
            raise ValueError("local_address must be an address or host name without spaces")
        if self.h264_max_level not in _H264_LEVELS:
            raise ValueError("h264_max_level must be an H.264 level_idc such as 31")
        unknown = [s for s in self.sdes_suites if not isinstance(s, SdesSuite)]
        if unknown:
            raise ValueError("sdes_suites must be SdesSuite members")

    @property
    def addrtype(self) -> str:
        try:
            return "IP6" if ipaddress.ip_address(self.local_address).version == 6 else "IP4"
        except ValueError:
            return "IP4"  # A host name: RFC 8866 allows an FQDN with addrtype IP4.


@dataclass(frozen=True, slots=True)
class NegotiatedSession:
    """The outcome of one offer/answer: accepted streams, rejected lines, and the answer SDP.

    The ``repr`` shows no key: :class:`SrtpKeys` and the SDP models redact themselves.
    """

    offer: SessionDescription
    answer: SessionDescription
    media: tuple[NegotiatedMedia, ...]
    rejected: tuple[RejectedMedia, ...]
    settings: AnswerSettings

    @property
    def audio(self) -> NegotiatedMedia | None:
        return next((m for m in self.media if m.kind is MediaKind.AUDIO), None)

    @property
    def video(self) -> NegotiatedMedia | None:
        return next((m for m in self.media if m.kind is MediaKind.VIDEO), None)

    @property
    def on_hold(self) -> bool:
        return is_hold(self.offer)

    @property
    def ports(self) -> dict[int, tuple[int, int]]:
        """The local (RTP, RTCP) ports in use, by m-line index; the others can be released."""
        return {m.index: m.local_ports for m in self.media}

    def media_at(self, index: int) -> NegotiatedMedia | None:
        return next((m for m in self.media if m.index == index), None)


def is_hold(offer: SessionDescription) -> bool:
    """True when every active RTP line of the offer is held.

    Held means the offerer will not receive: ``sendonly`` or ``inactive`` (RFC 3264 §8.4), or
    the RFC 2543 ``c=0.0.0.0``. A peer that only stops sending (``recvonly``) is muted, not held.
    """
    active = [m for m in offer.media if m.port != 0 and m.is_rtp]
    return bool(active) and all(_held(offer, m) for m in active)


def _held(offer: SessionDescription, media: MediaDescription) -> bool:
    connection = offer.media_connection(media)
    unspecified = connection is not None and connection.is_unspecified
    return unspecified or not offer.media_direction(media).receives


def answer_offer(
    offer: SessionDescription,
    *,
    local_address: str,
    ports: Mapping[int, tuple[int, int]],
    over_tls: bool,
    session_id: int,
    session_version: int = 0,
    allow_plain_rtp: bool = False,
    supported_audio: Sequence[str] = DEFAULT_AUDIO,
    supported_video: Sequence[str] = DEFAULT_VIDEO,
    sdes_suites: Sequence[SdesSuite] = tuple(SdesSuite),
    h264_profiles: Collection[H264Profile] = DEFAULT_H264_PROFILES,
    h264_max_level: int = DEFAULT_H264_MAX_LEVEL,
    dtls_fingerprint: Fingerprint | None = None,
    video_max_kbps: int | None = None,
    username: str = "confnode",
    session_name: str = "confnode",
    random_bytes: RandomBytes = secrets.token_bytes,
) -> NegotiatedSession:
    """Answer an initial offer, or raise :class:`NotAcceptable` (488).

    ``ports`` maps m-line index to the local (RTP, RTCP) ports allocated for it; a line without
    an entry is rejected, so the caller decides how many streams it can carry. ``over_tls`` is
    whether the INVITE arrived over TLS (SIPS); it gates SDES. ``random_bytes`` draws the SRTP
    keys (a CSPRNG; replaceable only so tests can assert exact answers).
    """
    settings = AnswerSettings(
        local_address=local_address, allow_plain_rtp=allow_plain_rtp,
        supported_audio=tuple(supported_audio), supported_video=tuple(supported_video),
        sdes_suites=tuple(sdes_suites), h264_profiles=frozenset(h264_profiles),
        h264_max_level=h264_max_level, dtls_fingerprint=dtls_fingerprint,
        video_max_kbps=video_max_kbps, username=username, session_name=session_name)
    return _negotiate(offer, settings, ports=ports, over_tls=over_tls, session_id=session_id,
                      session_version=session_version, random_bytes=random_bytes, previous=None)


def renegotiate(
    previous: NegotiatedSession,
    new_offer: SessionDescription,
    *,
    over_tls: bool,
    ports: Mapping[int, tuple[int, int]] | None = None,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> NegotiatedSession:
    """Answer a re-INVITE's offer within the dialog ``previous`` belongs to.

    ``ports`` is only consulted for m-lines that carry no stream yet (new lines, or a rejected
    line being reused); lines in use keep their ports. See the module docstring for what else
    is kept.
    """
    if new_offer == previous.offer:
        return previous
    if len(new_offer.media) < len(previous.offer.media):
        raise NotAcceptable(488, "a re-offer may not remove m-lines (RFC 3264 §8)")
    merged = {**(ports or {}), **previous.ports}
    origin = previous.answer.origin
    session = _negotiate(new_offer, previous.settings, ports=merged, over_tls=over_tls,
                         session_id=origin.session_id, session_version=origin.session_version,
                         random_bytes=random_bytes, previous=previous)
    if session.answer == previous.answer:
        return session
    bumped = replace(origin, session_version=origin.session_version + 1)
    return replace(session, answer=replace(session.answer, origin=bumped))


# -- the answerer --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    """A codec choice before it becomes part of the answer."""

    name: str
    rtpmap: RtpMap
    payload_type: int
    fmtp: str | None
    h264: H264Parameters | None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The answer line for one offered line and either the stream or why it was rejected."""

    answer: MediaDescription
    accepted: NegotiatedMedia | None = None
    rejected: RejectedMedia | None = None


def _negotiate(offer: SessionDescription, settings: AnswerSettings, *,
               ports: Mapping[int, tuple[int, int]], over_tls: bool, session_id: int,
               session_version: int, random_bytes: RandomBytes,
               previous: NegotiatedSession | None) -> NegotiatedSession:
    accepted: list[NegotiatedMedia] = []
    rejected: list[RejectedMedia] = []
    answers: list[MediaDescription] = []
    for index, offered in enumerate(offer.media):
        prior = previous.media_at(index) if previous is not None else None
        video_taken = any(m.kind is MediaKind.VIDEO for m in accepted)
        outcome = _answer_line(index, offered, offer, settings, ports=ports, over_tls=over_tls,
                               video_taken=video_taken, random_bytes=random_bytes, prior=prior)
        answers.append(outcome.answer)
        if outcome.accepted is not None:
            accepted.append(outcome.accepted)
        if outcome.rejected is not None:
            rejected.append(outcome.rejected)
    if not accepted:
        reason = next((r.reason for r in rejected
                       if r.reason is not RejectReason.OFFERER_REJECTED), None)
        if reason is None:
            raise NotAcceptable(488, "the offer has no active media line", warning=304)
        raise NotAcceptable(488, reason.value, warning=reason.warning)
    origin = Origin(settings.username, session_id, session_version, settings.local_address,
                    settings.addrtype)
    answer = SessionDescription(
        origin=origin, session_name=settings.session_name,
        connection=Connection(settings.local_address, settings.addrtype),
        # RFC 3264 §6: the answer's t= equals the offer's.
        timings=offer.timings, media=tuple(answers))
    return NegotiatedSession(offer=offer, answer=answer, media=tuple(accepted),
                             rejected=tuple(rejected), settings=settings)


def _reject(index: int, offered: MediaDescription, reason: RejectReason) -> _Outcome:
    # RFC 3264 §6: a rejected line keeps media, proto and formats, with port 0.
    attributes = (Attribute("mid", offered.mid),) if offered.mid is not None else ()
    answer = MediaDescription(media=offered.media, port=0, proto=offered.proto,
                              formats=offered.formats, attributes=attributes)
    return _Outcome(answer=answer, rejected=RejectedMedia(index, offered.media, reason))


def _answer_line(index: int, offered: MediaDescription, offer: SessionDescription,
                 settings: AnswerSettings, *, ports: Mapping[int, tuple[int, int]],
                 over_tls: bool, video_taken: bool, random_bytes: RandomBytes,
                 prior: NegotiatedMedia | None) -> _Outcome:
    if offered.port == 0:
        return _reject(index, offered, RejectReason.OFFERER_REJECTED)
    if offered.media not in (MediaKind.AUDIO, MediaKind.VIDEO):
        return _reject(index, offered, RejectReason.MEDIA_TYPE)
    kind = MediaKind(offered.media)
    if not offered.is_rtp:
        return _reject(index, offered, RejectReason.TRANSPORT)
    connection = offer.media_connection(offered)
    if connection is None:
        # parse_sdp refuses such offers; a model built in code may still lack a c= line.
        return _reject(index, offered, RejectReason.NO_ADDRESS)
    if kind is MediaKind.VIDEO:
        if (offered.content or "").lower() == "slides":
            return _reject(index, offered, RejectReason.PRESENTATION)
        if video_taken:
            return _reject(index, offered, RejectReason.EXTRA_VIDEO)
    if prior is not None and prior.kind is not kind:
        prior = None  # The slot was reused for another media type: nothing carries over.

    security, crypto, dtls_or_reason = _security(offered, offer, settings, over_tls, prior)
    if isinstance(dtls_or_reason, RejectReason):
        return _reject(index, offered, dtls_or_reason)
    dtls = dtls_or_reason

    supported = settings.supported_audio if kind is MediaKind.AUDIO else settings.supported_video
    codec = _choose_codec(offered, supported, settings, prior.codec if prior else None)
    if codec is None:
        return _reject(index, offered, RejectReason.NO_CODEC)
    local_ports = ports.get(index)
    if local_ports is None:
        return _reject(index, offered, RejectReason.NO_PORT)
    _check_ports(local_ports)

    srtp: SrtpKeys | None = None
    if crypto is not None:
        suite = crypto.sdes_suite
        assert suite is not None  # choose_crypto only returns usable lines
        previous_keys = prior.srtp if prior is not None else None
        if (previous_keys is not None and previous_keys.suite is suite
                and previous_keys.remote_key == crypto.key_salt):
            local_key = previous_keys.local_key  # Same line, same key: no rekeying.
        else:
            local_key = generate_key(suite, random_bytes)
        srtp = SrtpKeys(suite, crypto.tag, local_key, crypto.key_salt)

    telephone_event = (offered.telephone_event_pt_for(codec.rtpmap.clock_rate)
                       if kind is MediaKind.AUDIO else None)
    remote_direction = offer.media_direction(offered)
    direction = remote_direction.mirrored()
    if connection.is_unspecified:
        direction = Direction.of(sends=False, receives=direction.receives)
    rtcp_mux = offered.rtcp_mux
    remote_rtp = TransportAddress(connection.address, offered.port)
    rtcp = offered.rtcp
    if rtcp_mux:
        remote_rtcp = remote_rtp
    elif rtcp is not None:
        remote_rtcp = TransportAddress(rtcp.address or connection.address, rtcp.port)
    else:
        remote_rtcp = TransportAddress(connection.address, offered.port + 1)

    feedback = (tuple(f for f in offered.rtcp_feedback(codec.payload_type)
                      if f in SUPPORTED_FEEDBACK) if kind is MediaKind.VIDEO else ())
    negotiated_codec = NegotiatedCodec(
        name=codec.name, payload_type=codec.payload_type, clock_rate=codec.rtpmap.clock_rate,
        channels=codec.rtpmap.channels, fmtp=codec.fmtp,
        remote_fmtp=offered.fmtp(codec.payload_type), feedback=feedback, h264=codec.h264)
    media = NegotiatedMedia(
        index=index, kind=kind, proto=offered.proto, mid=offered.mid, security=security,
        remote_rtp=remote_rtp, remote_rtcp=remote_rtcp, rtcp_mux=rtcp_mux,
        local_ports=local_ports, codec=negotiated_codec, telephone_event_pt=telephone_event,
        direction=direction, remote_direction=remote_direction, remote_ptime=offered.ptime,
        remote_max_kbps=offered.max_bandwidth_kbps, srtp=srtp, dtls=dtls)
    answer = _answer_media(offered, media, codec, settings)
    return _Outcome(answer=answer, accepted=media)


def _check_ports(local_ports: tuple[int, int]) -> None:
    if len(local_ports) != 2 or not all(1 <= p <= 65535 for p in local_ports):
        raise ValueError("ports must map an m-line index to two ports in 1..65535")


def _security(
    offered: MediaDescription, offer: SessionDescription, settings: AnswerSettings,
    over_tls: bool, prior: NegotiatedMedia | None,
) -> tuple[MediaSecurity, CryptoAttribute | None, DtlsParameters | RejectReason | None]:
    """Decide how the line is protected; the third item is a reason when it is refused."""
    proto = offered.proto.upper()
    if proto in _DTLS_PROTOS:
        if settings.dtls_fingerprint is None:
            return MediaSecurity.DTLS_SRTP, None, RejectReason.NO_DTLS
        fingerprints = offer.media_fingerprints(offered)
        if not fingerprints:
            return MediaSecurity.DTLS_SRTP, None, RejectReason.NO_FINGERPRINT
        # RFC 4145 §4: a missing a=setup means "active"; RFC 5763 §5 has offerers use actpass.
        remote_setup = offer.media_setup(offered) or "active"
        local_setup = {"passive": "active", "holdconn": "holdconn"}.get(remote_setup, "passive")
        return MediaSecurity.DTLS_SRTP, None, DtlsParameters(
            fingerprints, remote_setup, local_setup, settings.dtls_fingerprint)
    if proto in _SDES_PROTOS:
        if not over_tls:
            return MediaSecurity.SDES, None, RejectReason.SDES_WITHOUT_TLS
        chosen = _choose_sdes(offered, settings, prior)
        if chosen is None:
            return MediaSecurity.SDES, None, RejectReason.NO_CRYPTO_SUITE
        return MediaSecurity.SDES, chosen, None
    if proto in _PLAIN_PROTOS:
        offered_crypto = offered.has_attribute("crypto")
        if offered_crypto and over_tls:
            chosen = _choose_sdes(offered, settings, prior)
            if chosen is not None:
                return MediaSecurity.SDES, chosen, None  # Best-effort SRTP, answered as SRTP.
        if settings.allow_plain_rtp:
            return MediaSecurity.PLAIN, None, None
        if offered_crypto:
            reason = RejectReason.NO_CRYPTO_SUITE if over_tls else RejectReason.SDES_WITHOUT_TLS
            return MediaSecurity.PLAIN, None, reason
        return MediaSecurity.PLAIN, None, RejectReason.PLAIN_RTP
    return MediaSecurity.PLAIN, None, RejectReason.TRANSPORT


def _choose_sdes(offered: MediaDescription, settings: AnswerSettings,
                 prior: NegotiatedMedia | None) -> CryptoAttribute | None:
    lines = offered.crypto
    if prior is not None and prior.srtp is not None:
        # Keep the line we answered before if the peer still offers it with the same key.
        for line in lines:
            if (line.refusal() is None and line.sdes_suite is prior.srtp.suite
                    and prior.srtp.suite in settings.sdes_suites
                    and line.key_salt == prior.srtp.remote_key):
                return line
    return choose_crypto(lines, settings.sdes_suites)


# -- codecs --------------------------------------------------------------------------------------


def _choose_codec(offered: MediaDescription, supported: Sequence[str], settings: AnswerSettings,
                  prior: NegotiatedCodec | None) -> _Codec | None:
    wanted = {name.lower(): name for name in supported}
    rtpmaps = offered.rtpmaps()
    candidates: list[_Codec] = []
    for pt in offered.payload_types:
        rtpmap = rtpmaps.get(pt)
        if rtpmap is None:
            continue  # A dynamic payload type without a=rtpmap means nothing.
        encoding = rtpmap.encoding.lower()
        if encoding in _NOT_A_CODEC or encoding not in wanted:
            continue
        expected_clock = _CODEC_CLOCK_RATES.get(encoding)
        if expected_clock is not None and rtpmap.clock_rate != expected_clock:
            continue
        h264: H264Parameters | None = None
        if encoding == "h264":
            h264 = _h264_answer(offered.fmtp_parameters(pt), settings)
            if h264 is None:
                continue
        candidates.append(_Codec(wanted[encoding], rtpmap, pt, _answer_fmtp(encoding, h264,
                                                                            offered, pt), h264))
    if prior is not None:
        for candidate in candidates:
            if _same_codec(candidate, prior):
                return candidate
    candidates.sort(key=lambda c: c.name.lower() not in WIDEBAND_AUDIO)  # stable: offer order
    return candidates[0] if candidates else None


def _same_codec(candidate: _Codec, prior: NegotiatedCodec) -> bool:
    same_mode = (candidate.h264 is None or prior.h264 is None
                 or candidate.h264.packetization_mode == prior.h264.packetization_mode)
    return (candidate.name == prior.name and candidate.rtpmap.clock_rate == prior.clock_rate
            and same_mode)


def _answer_fmtp(encoding: str, h264: H264Parameters | None, offered: MediaDescription,
                 pt: int) -> str | None:
    if h264 is not None:
        text = (f"profile-level-id={h264.profile_level_id};"
                f"packetization-mode={h264.packetization_mode}")
        return text + (";level-asymmetry-allowed=1" if h264.level_asymmetry_allowed else "")
    if encoding == "opus":
        return "useinbandfec=1"  # RFC 7587 §6.1: we decode in-band FEC, so ask for it.
    if encoding in _CODEC_CLOCK_RATES:
        return None  # G.711, G.722, VP8 and friends need no format parameters from us.
    return offered.fmtp(pt)  # A codec we know nothing about: mirror the offer's parameters.


def h264_profile(profile_level_id: str) -> tuple[H264Profile, int] | None:
    """(profile, level) of an RFC 6184 ``profile-level-id`` (level 1b as :data:`H264_LEVEL_1B`).

    ``None`` for malformed ids, unknown profiles and unknown levels.
    """
    if len(profile_level_id) != 6:
        return None
    try:
        raw = bytes.fromhex(profile_level_id)
    except ValueError:
        return None
    profile_idc, profile_iop, level_idc = raw
    # RFC 6184 §8.1: level_idc 11 with constraint_set3_flag (0x10) means level 1b.
    level = H264_LEVEL_1B if level_idc == 11 and profile_iop & 0x10 else level_idc
    if level not in _H264_LEVELS:
        return None
    bits = f"{profile_iop:08b}"
    for idc, pattern, profile in _H264_PATTERNS:
        if idc == profile_idc and all(p in ("x", b) for p, b in zip(pattern, bits, strict=True)):
            return profile, level
    return None


def _level_key(level: int) -> float:
    # Level 1b sits between 1.0 and 1.1.
    return 10.5 if level == H264_LEVEL_1B else float(level)


def _profile_level_id(profile: H264Profile, level: int) -> str | None:
    if level == H264_LEVEL_1B:
        return _H264_CANONICAL_1B.get(profile)
    return f"{_H264_CANONICAL[profile]}{level:02x}"


def _h264_answer(params: Mapping[str, str], settings: AnswerSettings) -> H264Parameters | None:
    mode_text = params.get("packetization-mode", "0")  # RFC 6184 §8.1: absent means 0.
    if mode_text not in ("0", "1"):
        return None  # Mode 2 (interleaved) is not supported.
    parsed = h264_profile(params.get("profile-level-id", "42000a"))  # absent: Baseline 1.0
    if parsed is None or parsed[0] not in settings.h264_profiles:
        return None
    profile, offered_level = parsed
    asymmetric = params.get("level-asymmetry-allowed") == "1"
    ours = settings.h264_max_level
    lower = min(offered_level, ours, key=_level_key)
    receive_level = ours if asymmetric else lower
    send_level = offered_level if asymmetric else lower
    profile_level_id = _profile_level_id(profile, receive_level)
    if profile_level_id is None:
        return None  # Level 1b in a High profile has no profile-level-id spelling.
    return H264Parameters(profile=profile, packetization_mode=int(mode_text),
                          level_asymmetry_allowed=asymmetric, receive_level=receive_level,
                          send_level=send_level, profile_level_id=profile_level_id)


# -- the answer m-line ---------------------------------------------------------------------------


def _rtpmap_value(pt: int, encoding: str, rtpmap: RtpMap, kind: MediaKind) -> str:
    # Audio channel counts other than 1 are written (opus is always "/2", RFC 7587 §7).
    channels = encoding.lower() == "opus" or (kind is MediaKind.AUDIO and rtpmap.channels != 1)
    suffix = f"/{2 if encoding.lower() == 'opus' else rtpmap.channels}" if channels else ""
    return f"{pt} {encoding}/{rtpmap.clock_rate}{suffix}"


def _answer_media(offered: MediaDescription, media: NegotiatedMedia, codec: _Codec,
                  settings: AnswerSettings) -> MediaDescription:
    attributes: list[Attribute] = []
    if media.mid is not None:
        attributes.append(Attribute("mid", media.mid))
    pt = codec.payload_type
    attributes.append(Attribute("rtpmap", _rtpmap_value(pt, codec.rtpmap.encoding, codec.rtpmap,
                                                        media.kind)))
    if codec.fmtp:
        attributes.append(Attribute("fmtp", f"{pt} {codec.fmtp}"))
    attributes.extend(Attribute("rtcp-fb", f"{pt} {fb}") for fb in media.codec.feedback)
    formats = [str(pt)]
    if media.telephone_event_pt is not None:
        te = media.telephone_event_pt
        formats.append(str(te))
        attributes.append(Attribute("rtpmap", f"{te} telephone-event/{codec.rtpmap.clock_rate}"))
        attributes.append(Attribute("fmtp", f"{te} {TELEPHONE_EVENTS}"))
    if media.kind is MediaKind.AUDIO:
        attributes.append(Attribute("ptime", str(ANSWER_PTIME_MS)))
    if media.rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    elif media.local_ports[1] != media.local_ports[0] + 1:
        attributes.append(Attribute("rtcp", str(media.local_ports[1])))
    if media.srtp is not None:
        # RFC 4568 §7.1.2: the answer repeats the chosen line's tag and suite with our key.
        line = CryptoAttribute(media.srtp.tag, media.srtp.suite.value,
                               (KeyParam(media.srtp.local_key),))
        attributes.append(Attribute("crypto", line.serialize()))
    if media.dtls is not None:
        attributes.append(Attribute("setup", media.dtls.local_setup))
        attributes.append(Attribute("fingerprint", media.dtls.local_fingerprint.serialize_value()))
    attributes.append(Attribute(media.direction.value))
    bandwidths: tuple[Bandwidth, ...] = ()
    if media.kind is MediaKind.VIDEO and settings.video_max_kbps is not None:
        bandwidths = (Bandwidth("AS", settings.video_max_kbps),)
    return MediaDescription(media=offered.media, port=media.local_rtp_port, proto=offered.proto,
                            formats=tuple(formats), bandwidths=bandwidths,
                            attributes=tuple(attributes))

