"""The audit report as people read it: a terminal table, and Markdown for a risk assessment.

Both are views of one ``AuditReport``; ``AuditReport.to_dict`` is the JSON view. The Markdown
says what was checked against what, lists every deviation first, and keeps the full evidence
(each listener's configuration, the certificate, every probe) so a reviewer can attach it as is.
"""

from __future__ import annotations

from confnode.security.audit import AuditReport, Finding, ListenerReport, Verdict

_MARK = {Verdict.PASS: "ok", Verdict.FAIL: "FAIL", Verdict.SKIPPED: "skip",
         Verdict.INFO: "info"}


def _join(values: tuple[str, ...]) -> str:
    return ", ".join(values) if values else "-"


def _listener_rows(listener: ListenerReport) -> list[tuple[str, str]]:
    rows = [("address", listener.address),
            ("status", "configured" if listener.configured else listener.note),
            ("profile", listener.profile.value)]
    if listener.versions:
        rows.append(("versions", _join(listener.versions)))
    if listener.suites:
        rows.append(("suites", _join(listener.suites)))
    if listener.groups:
        rows.append(("groups", _join(listener.groups)))
    if listener.srtp_profiles:
        rows.append(("SRTP profiles", _join(listener.srtp_profiles)))
    if listener.fingerprint_algorithms:
        rows.append(("fingerprints", _join(listener.fingerprint_algorithms)))
    if listener.configured and listener.note:
        rows.append(("note", listener.note))
    return rows


def render_text(report: AuditReport) -> str:
    lines = [f"confnode audit of {report.node_url}",
             f"node profile {report.node_profile}; audited against {report.audited_profile} "
             f"({report.reference}); {report.generated_at.isoformat()}", ""]
    for listener in report.listeners:
        lines.append(f"[{listener.kind.value}]")
        lines += [f"  {name:<14} {value}" for name, value in _listener_rows(listener)]
    if report.certificate is not None:
        c = report.certificate
        lines += ["", "[certificate]", f"  {'file':<14} {c.path}", f"  {'subject':<14} {c.subject}",
                  f"  {'key':<14} {c.key_type}", f"  {'signature':<14} {c.signature_algorithm}",
                  f"  {'valid':<14} {c.not_before.isoformat()} .. {c.not_after.isoformat()} "
                  f"({c.lifetime_days} days, {c.days_left} left)",
                  f"  {'names':<14} {_join(c.sans)}",
                  f"  {'sha-256':<14} {c.sha256_fingerprint}"]
    lines += ["", "[findings]"]
    width = max((len(f"{f.area}.{f.check}") for f in report.findings), default=10)
    for finding in report.findings:
        name = f"{finding.area}.{finding.check}"
        lines.append(f"  {_MARK[finding.verdict]:<4} {name:<{width}}  {finding.detail}")
    count = len(report.deviations)
    lines += ["", "COMPLIANT: no deviations" if report.compliant
              else f"NOT COMPLIANT: {count} deviation{'s' if count != 1 else ''}"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _finding_table(findings: tuple[Finding, ...]) -> list[str]:
    rows = ["| result | area | check | detail |", "|---|---|---|---|"]
    rows += [f"| {_MARK[f.verdict]} | {f.area} | {_cell(f.check)} | {_cell(f.detail)} |"
             for f in findings]
    return rows


def render_markdown(report: AuditReport) -> str:
    verdict = ("**Compliant**: no deviations." if report.compliant else
               f"**Not compliant**: {len(report.deviations)} deviation(s), listed first.")
    lines = [
        "# confnode security audit", "",
        "| | |", "|---|---|",
        f"| node | {report.node_url} |",
        f"| node's profile | {report.node_profile} |",
        f"| audited against | {report.audited_profile} ({report.reference}) |",
        f"| generated | {report.generated_at.isoformat()} |", "",
        verdict, "",
        "Method: the configuration each listener is built with on this node's Python/OpenSSL; "
        "the certificate file; real handshakes against the running node (sslyze's compliance "
        "checker for the HTTPS and SIP-TLS listeners with the matching compliance profile, its "
        "0-RTT probe, "
        "the HTTP security headers, and DTLS-SRTP calls through the node's client API with "
        "peers offering one version, suite, SRTP profile or fingerprint at a time).", "",
    ]
    if report.deviations:
        lines += ["## Deviations", "", *_finding_table(report.deviations), ""]
    lines += ["## Listeners", ""]
    for listener in report.listeners:
        lines += [f"### {listener.kind.value}", "", "| | |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in _listener_rows(listener)]
        lines.append("")
    if report.certificate is not None:
        c = report.certificate
        lines += ["## Certificate", "", "| | |", "|---|---|",
                  f"| file | {c.path} |", f"| subject | {c.subject} |",
                  f"| key | {c.key_type} |", f"| signature | {c.signature_algorithm} |",
                  f"| valid from | {c.not_before.isoformat()} |",
                  f"| valid until | {c.not_after.isoformat()} ({c.days_left} days left) |",
                  f"| lifetime | {c.lifetime_days} days |",
                  f"| names | {_cell(_join(c.sans))} |",
                  f"| SHA-256 | {c.sha256_fingerprint} |", ""]
    if report.dtls_probes:
        lines += ["## DTLS-SRTP probes", "",
                  "| probe | node role | expected | result | negotiated |", "|---|---|---|---|---|"]
        for result in report.dtls_probes:
            probe = result.probe
            lines.append(f"| {_cell(probe.name)} | {probe.node_role} | "
                         f"{'accept' if probe.should_accept else 'refuse'} | "
                         f"{'accepted' if result.accepted else 'refused'} | "
                         f"{_cell(result.detail)} |")
        lines.append("")
    lines += ["## All findings", "", *_finding_table(report.findings), ""]
    return "\n".join(lines)
