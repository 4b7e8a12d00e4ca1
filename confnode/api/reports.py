"""Statistics (MedCom monitoring figures) and licence usage."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from confnode.api.auth import CurrentPrincipal, node_of
from confnode.errors import InvalidInput
from confnode.records.statistics import to_csv, to_dict
from confnode.store.records import month_statistics

router = APIRouter(prefix="/api/v1", tags=["reports"])

# Years 1970-2999: no records exist outside them, and year 0 or 9999-12 crashed the month
# arithmetic (a 500).
_MONTH = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")


def parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.match(value)
    if match is None:
        raise InvalidInput("month must look like 2026-11.")
    return int(match.group(1)), int(match.group(2))


@router.get("/statistics", summary="Monthly consultation/conference figures for your "
            "organisation (JSON or CSV)", response_model=None,
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
async def statistics(
    request: Request,
    principal: CurrentPrincipal,
    month: Annotated[str, Query(description="YYYY-MM", pattern=_MONTH.pattern)],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response | dict[str, Any]:
    node = node_of(request)
    year, number = parse_month(month)
    stats = await month_statistics(node.records, year, number, node.settings.tz, node.now())
    # An organisation sees its own row only; the node operator uses `confnode stats`.
    stats = replace(stats, organisations=tuple(
        o for o in stats.organisations if o.org_id == principal.org_id), regions=())
    if format == "csv":
        return PlainTextResponse(to_csv(stats), media_type="text/csv")
    data = to_dict(stats)
    return {"month": data["month"], "timezone": data["timezone"],
            "organisations": data["organisations"]}


@router.get("/licences", summary="Licence pools: in use, capacity, grace, daily peaks")
async def licences(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    principal.ensure_admin()
    node = node_of(request)
    return await node.licence_report()
