"""``confnode``: run a node and work with it from the shell.

``serve`` runs the node. ``stats`` reads the store directly (the operator's view across every
organisation). The other commands talk to a running node over its API, authenticating with
``--token``, ``$CONFNODE_API_TOKEN`` or the admin token the node wrote to its data directory on
first start, and trusting the node's self-signed certificate from the same directory.

Exit codes: 0 done; 1 the node refused (its message is printed); 2 bad usage; 3 node unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from confnode.config import Settings, describe_settings
from confnode.security.redaction import install_redaction

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    if args.config:
        os.environ["CONFNODE_CONFIG"] = str(args.config)
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    try:
        settings = Settings(**overrides)
        if getattr(args, "host", None) or getattr(args, "port", None) is not None:
            http = settings.http.model_copy(update={
                k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None})
            settings = settings.model_copy(update={"http": http})
    except ValidationError as exc:
        raise CliError(f"Invalid configuration: {exc}", EXIT_USAGE) from None
    return settings


# serve / settings / stats: local


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.print_config:
        print(settings.model_dump_json(indent=2))
        return 0
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction()
    from confnode.node import Node
    from confnode.transport.https import serve

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    node = Node(settings)
    print(f"confnode serving {settings.public_url} (data in {settings.data_dir}); "
          f"admin API token in {node.admin_token_path}", flush=True)
    runner(serve(node))
    return 0


def settings_markdown() -> str:
    """The settings reference (docs/configuration.md is this output; a test keeps it current)."""
    lines = ["# Configuration", "",
             "Every setting, from `confnode settings`. Set them in a TOML file given by "
             "`--config` or `CONFNODE_CONFIG` (nested tables, e.g. `[licences]` `port = 250`), "
             "or as environment variables (strongest).", "",
             "| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, description, default in describe_settings():
        env = "CONFNODE_" + name.upper().replace(".", "__")
        shown = "(derived)" if default is None else f"`{default}`"
        lines.append(f"| `{name}` | `{env}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


def cmd_settings(_args: argparse.Namespace) -> int:
    sys.stdout.write(settings_markdown())
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from confnode.api.reports import parse_month
    from confnode.errors import InvalidInput
    from confnode.records.statistics import to_csv, to_dict
    from confnode.store.database import Database, create_engine, migrate
    from confnode.store.records import RecordStore, month_statistics

    settings = _settings(args)
    try:
        year, month = parse_month(args.month)
    except InvalidInput as exc:
        raise CliError(exc.message, EXIT_USAGE) from None

    async def run() -> Any:
        engine = create_engine(settings.effective_database_url)
        try:
            await migrate(engine)
            return await month_statistics(RecordStore(Database(engine)), year, month, settings.tz,
                                          datetime.now(UTC))
        finally:
            await engine.dispose()

    stats = asyncio.run(run())
    if args.format == "csv":
        sys.stdout.write(to_csv(stats))
    else:
        print(json.dumps(to_dict(stats), indent=2))
    return 0


# Commands against a running node


class NodeClient:
    def __init__(self, args: argparse.Namespace) -> None:
        settings = _settings(args)
        self.base = (args.url or settings.public_url).rstrip("/")
        token = args.token or os.environ.get("CONFNODE_API_TOKEN")
        token_file = settings.data_dir / "admin-token"
        if token is None and token_file.exists():
            token = token_file.read_text().strip()
        if not token:
            raise CliError("No API token: give --token, set CONFNODE_API_TOKEN, or run in the "
                           "node's data directory.", EXIT_USAGE)
        cert = settings.data_dir / "tls" / "node-cert.pem"
        verify: bool | ssl.SSLContext = (ssl.create_default_context(cafile=cert)
                                         if cert.exists() else True)
        self.http = httpx.Client(base_url=self.base, verify=verify, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"Cannot reach the node at {self.base}: {type(exc).__name__}",
                           EXIT_UNREACHABLE) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise CliError(f"{response.status_code}: {message}", EXIT_REFUSED)
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text


def _print_booking(b: dict[str, Any]) -> None:
    print(f"Meeting   {b['id']}  ({b['meeting_type']}, {b['status']})")
    print(f"Subject   {b['subject']}")
    if b.get("opens_at"):
        print(f"Window    {b['opens_at']} - {b['closes_at']}")
    print(f"Host link  {b['host_link']}")
    print(f"Guest link {b['guest_link']}")
    print(f"SIP        {b['sip_uri']}")
    if b.get("host_pin"):
        print(f"Host PIN   {b['host_pin']}")
    if b.get("guest_pin"):
        print(f"Guest PIN  {b['guest_pin']}")


def cmd_book(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"subject": args.subject}
    if args.instant:
        body["meeting_type"] = "instant"
    else:
        if not args.start or not args.end:
            raise CliError("Give --start and --end (ISO 8601 with offset), or --instant.",
                           EXIT_USAGE)
        body.update(start_time=args.start, end_time=args.end)
    if args.end and args.instant:
        body["end_time"] = args.end
    for flag in ("host_pin_required", "guest_pin_required"):
        if getattr(args, flag):
            body[flag] = True
    if args.organizer:
        body["organizer_email"] = args.organizer
    booking = NodeClient(args).call("POST", "/api/v1/meetings", json=body)
    if args.json:
        print(json.dumps(booking, indent=2))
    else:
        _print_booking(booking)
    return 0


def cmd_meetings(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.start:
        params["from"] = args.start
    if args.end:
        params["to"] = args.end
    meetings = NodeClient(args).call("GET", "/api/v1/meetings", params=params)
    if args.json:
        print(json.dumps(meetings, indent=2))
        return 0
    for m in meetings:
        print(f"{m['id']}  {m['status']:<9} {m['meeting_type']:<12} "
              f"{m['start_time'] or '-':<26} {m['subject']}")
    return 0


def cmd_licences(args: argparse.Namespace) -> int:
    report = NodeClient(args).call("GET", "/api/v1/licences")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for kind, pool in report["pools"].items():
        grace = " (IN GRACE)" if pool["in_grace"] else ""
        print(f"{kind:<6} {pool['in_use']:>5} in use of {pool['capacity']} "
              f"(+{pool['grace_allowance']} grace){grace}")
    for peak in report["daily_peaks"][-14:]:
        print(f"peak {peak['day']} {peak['kind']:<6} {peak['peak']}")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    client = NodeClient(args)
    action = args.action
    if action == "list":
        result = client.call("GET", "/api/v1/queue")
    elif action == "open":
        result = client.call("POST", "/api/v1/queue/open")
    elif action == "close":
        result = client.call("POST", "/api/v1/queue/close",
                             json={"mode": "flush" if args.flush else "keep"})
    elif action == "link":
        result = client.call("POST", "/api/v1/queue/link")
    else:
        body = {"number": args.number} if args.number else {}
        result = client.call("POST", "/api/v1/queue/start", json=body)
        if not args.json:
            _print_booking(result)
            return 0
    if args.json or action == "link":
        print(json.dumps(result, indent=2))
        return 0
    print(f"Queue is {result['state']}; {len(result['waiting'])} waiting")
    for t in result["waiting"]:
        called = "  (call when ready)" if t["call_when_ready"] else ""
        print(f"  #{t['number']:<4} position {t['position']}{called}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit the running node; exit 1 on any deviation from the profile."""
    from confnode.security.audit import run_audit
    from confnode.security.audit_report import render_markdown, render_text

    settings = _settings(args)
    report = asyncio.run(run_audit(settings, datetime.now(UTC), profile=args.profile,
                                   url=args.url,
                                   token=args.token or os.environ.get("CONFNODE_API_TOKEN"),
                                   media_probes=not args.no_media_probes))
    if args.markdown:
        args.markdown.write_text(render_markdown(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        sys.stdout.write(render_text(report))
    if any(f.area == "node" and f.check == "reachable" for f in report.deviations):
        return EXIT_UNREACHABLE
    return 0 if report.compliant else EXIT_REFUSED


def cmd_capacity(args: argparse.Namespace) -> int:
    """Measure this host with the media engine and print the estimated maximum calls."""
    from confnode.capacity.host import DEFAULT_SECONDS, QUICK_SECONDS, measure_host
    from confnode.capacity.progress import ProgressBar
    from confnode.capacity.report import render_text

    settings = _settings(args)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if not 0 < seconds <= 600:
        raise CliError("--seconds must be above 0 and at most 600.", EXIT_USAGE)
    bar = ProgressBar(sys.stderr, seconds)
    try:
        capacity = measure_host(settings.media, seconds=seconds, progress=bar.update)
    finally:
        bar.finish()
    if args.json:
        print(json.dumps(capacity.to_dict(), indent=2))
    else:
        sys.stdout.write(render_text(capacity))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="confnode", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML settings file")
    common.add_argument("--data-dir", type=Path, help="data directory (default .confnode)")
    remote = argparse.ArgumentParser(add_help=False, parents=[common])
    remote.add_argument("--url", help="node base URL (default: from settings)")
    remote.add_argument("--token", help="API token (default: $CONFNODE_API_TOKEN or the "
                        "data directory's admin token)")
    remote.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run a node")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--print-config", action="store_true")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("settings", help="document every setting").set_defaults(func=cmd_settings)

    book = sub.add_parser("book", parents=[remote], help="book a meeting; print its links")
    book.add_argument("--subject", required=True)
    book.add_argument("--start", help="ISO 8601, e.g. 2026-11-23T10:00:00+01:00")
    book.add_argument("--end")
    book.add_argument("--instant", action="store_true", help="an instant (straks) meeting")
    book.add_argument("--host-pin-required", action="store_true")
    book.add_argument("--guest-pin-required", action="store_true")
    book.add_argument("--organizer", help="book on behalf of this user's e-mail")
    book.set_defaults(func=cmd_book)

    meetings = sub.add_parser("meetings", parents=[remote], help="list meetings")
    meetings.add_argument("--from", dest="start")
    meetings.add_argument("--to", dest="end")
    meetings.set_defaults(func=cmd_meetings)

    stats = sub.add_parser("stats", parents=[common], help="monthly statistics (all orgs)")
    stats.add_argument("--month", required=True, help="YYYY-MM")
    stats.add_argument("--format", choices=("json", "csv"), default="json")
    stats.set_defaults(func=cmd_stats)

    sub.add_parser("licences", parents=[remote], help="licence usage and daily peaks"
                   ).set_defaults(func=cmd_licences)

    queue = sub.add_parser("queue", parents=[remote], help="the clinic's waiting room")
    queue.add_argument("action", choices=("list", "open", "close", "start", "link"))
    queue.add_argument("--flush", action="store_true", help="close: remove everyone waiting")
    queue.add_argument("--number", type=int, help="start: this patient instead of the next")
    queue.set_defaults(func=cmd_queue)
    audit = sub.add_parser("audit", parents=[remote], help="check every listener against a "
                           "security profile with real handshakes; exit 1 on a deviation")
    audit.add_argument("--profile", choices=("modern", "intermediate", "bsi"),
                       help="audit against this profile (default: the node's)")
    audit.add_argument("--markdown", type=Path, help="also write a Markdown report here")
    audit.add_argument("--no-media-probes", action="store_true",
                       help="skip the DTLS-SRTP calls (they book one instant meeting)")
    audit.set_defaults(func=cmd_audit)

    capacity = sub.add_parser("capacity", parents=[common], help="measure this host with the "
                              "media engine; estimate maximum audio, SD, HD, Full-HD and "
                              "passthrough calls")
    capacity.add_argument("--quick", action="store_true", help="a few seconds instead of ~30")
    capacity.add_argument("--seconds", type=float, help="measuring time (default 20, 2.5 quick)")
    capacity.add_argument("--json", action="store_true", help="print JSON")
    capacity.set_defaults(func=cmd_capacity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"confnode: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
