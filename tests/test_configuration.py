"""Settings: every one documented, the reference file current, TOML and environment both work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from confnode.cli import settings_markdown
from confnode.config import Settings, describe_settings

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    rows = describe_settings()
    assert len(rows) >= 20
    assert [name for name, description, _ in rows if not description.strip()] == []


def test_reference_file_is_current() -> None:
    assert DOC.read_text() == settings_markdown(), "run: confnode settings > docs/configuration.md"


def test_toml_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "confnode.toml"
    config.write_text('region = "Syddanmark"\n[licences]\nport = 120\naudio = 10\n'
                      '[http]\nport = 9443\n')
    monkeypatch.setenv("CONFNODE_CONFIG", str(config))
    monkeypatch.setenv("CONFNODE_LICENCES__AUDIO", "20")
    settings = Settings()
    assert settings.region == "Syddanmark"
    assert settings.licences.port == 120
    assert settings.licences.audio == 20  # the environment wins over the file
    assert settings.public_url == "https://127.0.0.1:9443"


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFNODE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(Exception, match="Mars"):
        Settings()


def test_dial_plan_from_toml_and_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "confnode.toml"
    config.write_text("[[sip.dial_plan]]\npattern = '\\+45(\\d{8})'\nalias = '\\1'\n"
                      "[[sip.dial_plan]]\npattern = '9(\\d{10})'\nalias = '\\1'\n")
    monkeypatch.setenv("CONFNODE_CONFIG", str(config))
    rules = Settings().sip.dial_plan
    assert [(r.pattern, r.alias) for r in rules] == [(r"\+45(\d{8})", r"\1"),
                                                     (r"9(\d{10})", r"\1")]
    monkeypatch.setenv("CONFNODE_SIP__DIAL_PLAN", '[{"pattern": "0(\\\\d+)", "alias": "\\\\1"}]')
    assert [(r.pattern, r.alias) for r in Settings().sip.dial_plan] == [(r"0(\d+)", r"\1")]


@pytest.mark.parametrize(("rule", "message"), [
    ({"pattern": "(\\d+", "alias": "\\1"}, "not a regular expression"),
    ({"pattern": "(\\d+)", "alias": "room\\1"}, "digits only"),
    ({"pattern": "(\\d+)", "alias": "\\2"}, "does not have"),
    ({"pattern": "(\\d+)", "alias": "1", "room": "x"}, "Extra inputs"),
])
def test_bad_dial_plan_rules_are_refused_at_load(rule: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(sip={"dial_plan": [rule]})
