"""The node's Prometheus metrics, in a registry of its own (two nodes in one process must not
share counters, and an embedding application keeps its own default registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from confnode.licensing import GraceEntered, LicenceEvent, LicenceKind, LicenceRefusedEvent

if TYPE_CHECKING:
    from confnode.node import Node


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def on_licence_event(self, event: LicenceEvent) -> None:
        if isinstance(event, LicenceRefusedEvent):
            self.licence_refusals.labels(kind=event.kind.value).inc()
        elif isinstance(event, GraceEntered):
            self.grace_alerts.labels(kind=event.kind.value).inc()

    def refresh(self, node: Node) -> None:
        ledger = node.calls.ledger
        for kind in LicenceKind:
            self.licences_in_use.labels(kind=kind.value).set(ledger.in_use(kind))
            self.licence_capacity.labels(kind=kind.value).set(ledger.capacity(kind))
        rooms = node.rooms.all()
        self.live_rooms.set(len(rooms))
        self.participants.set(sum(len(r.room.participants()) for r in rooms))
