"""The node's Prometheus metrics, in a registry of its own (two nodes in one process must not
share counters, and an embedding application keeps its own default registry)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from confnode.licensing import GraceEntered, LicenceEvent, LicenceKind, LicenceRefusedEvent
from confnode.live.cpu_accounting import CpuInterval
from confnode.media.call_types import CallType

if TYPE_CHECKING:
    from confnode.node import Node
    from confnode.transport.webrtc.endpoint import WebRtcEndpoint

JOIN_BUCKETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total and friends: a load test divides the node's CPU by the
        # call-seconds it served. For an embedding application they cover its whole process.
        ProcessCollector(registry=self.registry)
        self.bookings = Counter("confnode_bookings_total", "Meetings booked, by kind",
                                ["kind"], registry=self.registry)
        self.licences_in_use = Gauge("confnode_licences_in_use", "Licences held now",
                                     ["kind"], registry=self.registry)
        self.licence_capacity = Gauge("confnode_licence_capacity", "Licensed pool size",
                                      ["kind"], registry=self.registry)
        self.licence_refusals = Counter("confnode_licence_refusals_total",
                                        "Calls refused for want of a licence", ["kind"],
                                        registry=self.registry)
        self.grace_alerts = Counter("confnode_licence_grace_entered_total",
                                    "Times a pool went into its grace overdraft", ["kind"],
                                    registry=self.registry)
        self.live_rooms = Gauge("confnode_live_rooms", "Rooms open now", registry=self.registry)
        self.participants = Gauge("confnode_participants", "Participants in rooms now",
                                  registry=self.registry)
        self.join_seconds = Histogram(
            "confnode_join_seconds", "From request_token to the first media packet, per "
            "direction (sent by the node / received from the participant)", ["direction"],
            buckets=JOIN_BUCKETS, registry=self.registry)
        self.added_latency = Histogram(
            "confnode_media_added_latency_seconds", "Time a media frame spends in the node, "
            "from ingress (complete frame received) to egress (handed to the sender)",
            ["kind", "path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        # Observed for every frame sent: ``labels()`` builds and looks up a key each time.
        self._latency_series: dict[tuple[str, str], Any] = {}
        self.frames_decoded = Gauge("confnode_frames_decoded", "Inbound frames decoded by the "
                                    "node since start (0 growth in passthrough calls)",
                                    registry=self.registry)
        self.frames_forwarded = Gauge("confnode_frames_forwarded", "Inbound frames forwarded "
                                      "without decoding since start", registry=self.registry)
        # The node's own CPU per call type (confnode.live.cpu_accounting); "all" is unweighted.
        self.call_seconds = Counter("confnode_call_seconds_total", "Call-seconds carried, by "
                                    "call type", ["call_type"], registry=self.registry)
        self.cpu_in_calls = Counter("confnode_cpu_seconds_in_calls_total", "CPU-seconds of the "
                                    "node process (all threads) while it carried calls",
                                    registry=self.registry)
        self.cpu_per_call_second = Gauge(
            "confnode_cpu_seconds_per_call_second", "Node process CPU-seconds per call-second "
            "over the last minute, by call type (apportioned by Pexip HD units when types mix; "
            "call_type=\"all\": unweighted over every call)", ["call_type"],
            registry=self.registry)
        self._join_started: dict[str, float] = {}

    def join_started(self, participant_id: str) -> None:
        self._join_started[participant_id] = time.monotonic()

    def call_started(self, participant_id: str, endpoint: WebRtcEndpoint) -> None:
        started = self._join_started.pop(participant_id, None)
        if started is None:
            return

        def first_media(direction: str) -> None:
            self.join_seconds.labels(direction=direction).observe(time.monotonic() - started)

        endpoint.on_first_media = first_media

    def observe_latency(self, kind: str, path: str, seconds: float) -> None:
        series = self._latency_series.get((kind, path))
        if series is None:
            series = self._latency_series[(kind, path)] = self.added_latency.labels(
                kind=kind, path=path)
        series.observe(seconds)

    def on_licence_event(self, event: LicenceEvent) -> None:
        if isinstance(event, LicenceRefusedEvent):
            self.licence_refusals.labels(kind=event.kind.value).inc()
        elif isinstance(event, GraceEntered):
            self.grace_alerts.labels(kind=event.kind.value).inc()

    def on_cpu_interval(self, interval: CpuInterval) -> None:
        self.cpu_in_calls.inc(interval.cpu_seconds)
        for kind, seconds in interval.call_seconds().items():
            self.call_seconds.labels(call_type=kind.value).inc(seconds)

    def _publish_cpu(self, node: Node) -> None:
        node.cpu.sample()
        figures: dict[str, float | None] = {
            kind.value: value for kind, value in node.cpu.accounting.cpu_per_call_second().items()}
        figures["all"] = node.cpu.accounting.overall_cpu_per_call_second()
        for call_type in [*(kind.value for kind in CallType), "all"]:
            value = figures.get(call_type)
            if value is not None:
                self.cpu_per_call_second.labels(call_type=call_type).set(value)
            else:  # no such calls in the window: no figure, rather than a stale one
                with contextlib.suppress(KeyError):
                    self.cpu_per_call_second.remove(call_type)

    def refresh(self, node: Node) -> None:
        self._publish_cpu(node)
        ledger = node.calls.ledger
        for kind in LicenceKind:
            self.licences_in_use.labels(kind=kind.value).set(ledger.in_use(kind))
            self.licence_capacity.labels(kind=kind.value).set(ledger.capacity(kind))
        rooms = node.rooms.all()
        self.live_rooms.set(len(rooms))
        self.participants.set(sum(len(r.room.participants()) for r in rooms))
        decoded, forwarded = node.webrtc.frame_totals()
        self.frames_decoded.set(decoded)
        self.frames_forwarded.set(forwarded)
