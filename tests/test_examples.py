"""The embedding example works as documented: mounted under /video, lifespan-managed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).parents[1] / "examples" / "embed_fastapi.py"


def test_embedded_node_books_and_serves_links(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("embed_fastapi", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/").json() == {"live_rooms": 0, "port_licences_in_use": 0}
        assert client.get("/video/healthz").json()["status"] == "ok"
        token = (tmp_path / ".confnode-embedded" / "admin-token").read_text().strip()
        booked = client.post("/video/api/v1/meetings", headers={"Authorization": f"Bearer {token}"},
                             json={"subject": "Embedded", "meeting_type": "instant"})
        assert booked.status_code == 201, booked.text
        guest_link = booked.json()["guest_link"]
        assert guest_link.startswith("http://127.0.0.1:8000/video/j/")
        assert client.get(guest_link).json()["role"] == "guest"
