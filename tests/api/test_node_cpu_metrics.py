"""The node's own CPU per call-second, from a served node carrying real aiortc calls."""

from __future__ import annotations

import asyncio
import re

from bots import MediaBot
from clientapi import ClientParticipant, book, join, token_of, wait_for
from conftest import ServedNode


def series(metrics: str, name: str, call_type: str | None = None) -> float | None:
    labels = r"\{" + f'call_type="{call_type}"' + r"\}" if call_type else ""
    match = re.search(rf"^{name}{labels} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_passthrough_then_composed_calls_move_the_counters(served: ServedNode) -> None:
    b = await book(served, guests_wait_for_host=False)
    alias = token_of(b["guest_link"])
    people: list[ClientParticipant] = []
    async with served.http() as http:
        try:
            for name, tone in (("one", 500), ("two", 800)):
                person = await join(http, alias, name)
                assert (await person.call(MediaBot(name, tone=tone, luma=60))).status_code == 200
                people.append(person)
            media = served.node.webrtc.media[b["id"]]
            await wait_for(lambda: media.route.value == "passthrough")
            assert served.node.cpu.active_calls() == {"passthrough": 2}
            await asyncio.sleep(2.5)
            first = (await http.get("/metrics")).text
            passthrough_seconds = series(first, "confnode_call_seconds_total", "passthrough")
            assert passthrough_seconds is not None and passthrough_seconds >= 2 * 1.5
            ratio = series(first, "confnode_cpu_seconds_per_call_second", "passthrough")
            # Two forwarded calls cannot use more than the machine's two cores per call-second.
            assert ratio is not None and 0 < ratio < 2
            assert series(first, "confnode_cpu_seconds_per_call_second", "sd") is None

            third = await join(http, alias, "three")
            people.append(third)
            assert (await third.call(MediaBot("three", tone=1400, luma=200))).status_code == 200
            await wait_for(lambda: media.route.value == "mixed")
            # The served fixture composes 640x360: standard definition.
            assert served.node.cpu.active_calls() == {"sd": 3}
            await asyncio.sleep(2.5)
            second = (await http.get("/metrics")).text
            sd = series(second, "confnode_cpu_seconds_per_call_second", "sd")
            assert sd is not None and 0 < sd < 2
            assert (series(second, "confnode_call_seconds_total", "sd") or 0) >= 3 * 1.5
            cpu_first = series(first, "confnode_cpu_seconds_in_calls_total")
            cpu_second = series(second, "confnode_cpu_seconds_in_calls_total")
            assert cpu_first is not None and cpu_second is not None and cpu_second > cpu_first > 0
            overall = series(second, "confnode_cpu_seconds_per_call_second", "all")
            assert overall is not None and overall > 0
        finally:
            for person in people:
                await person.close()
