"""Settings and the clients file fail at startup, not on a request."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from cds_hooks.clients import ClientRegistry, ClientsFileError, fhir_server_allowed
from cds_hooks.settings import CdsSettings


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS384", "HS512"], []])
def test_weak_or_empty_algorithm_lists_are_refused(algs):
    with pytest.raises(ValidationError):
        CdsSettings(jwt_algorithms=algs)


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("CDS97530_PUBLIC_URL", "https://cds.example.org/")
    monkeypatch.setenv("CDS97530_DEADLINE_SECONDS", "0.8")
    monkeypatch.setenv("CDS97530_CORS_ORIGINS", '["https://ehr.example.org"]')
    s = CdsSettings()
    assert s.public_url == "https://cds.example.org"
    assert s.endpoint_url("/cds-services/x") == "https://cds.example.org/cds-services/x"
    assert s.deadline_seconds == 0.8 and s.cors_origins == ["https://ehr.example.org"]
    assert s.deadline_seconds < 2


def test_default_deadline_is_under_two_seconds():
    assert CdsSettings().deadline_seconds < 2


def test_clients_file_minimal_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clients:\n  - iss: https://ehr.example.org\n    jku: https://ehr.example.org/jwks\n"
                    "    fhir_servers: [https://ehr.example.org/fhir]\n")
    reg = ClientRegistry.load(path)
    (client,) = reg.by_iss("https://ehr.example.org")
    assert client.jku == ("https://ehr.example.org/jwks",)
    assert client.suggestion_style == "update" and client.label == "https://ehr.example.org"


@pytest.mark.parametrize("text,where", [
    ("clients:\n  - iss: x\n    jkuu: [y]\n", "clients.0.jkuu"),
    ("clients:\n  - jku: [y]\n", "clients.0.iss"),
    ("clients:\n  - iss: x\n    jwks: {a: 1}\n", "clients.0.jwks"),
    ("clients:\n  - iss: x\n    suggestion_style: patch\n", "clients.0.suggestion_style"),
    ("- just a list\n", "expected a mapping"),
    ("clients: [\n", "not valid YAML"),
])
def test_bad_clients_files_name_the_problem(tmp_path, text, where):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ClientsFileError, match=where.replace(".", r"\.")):
        ClientRegistry.load(path)


def test_missing_clients_file(tmp_path):
    with pytest.raises(ClientsFileError):
        ClientRegistry.load(tmp_path / "absent.yaml")


@pytest.mark.parametrize("url,ok", [
    ("https://ehr.example.org/fhir", True),
    ("https://ehr.example.org/fhir/", True),
    ("https://ehr.example.org/fhir/R4", True),
    ("https://ehr.example.org/fhirx", False),
    ("https://ehr.example.org.evil.test/fhir", False),
    ("https://user:pw@ehr.example.org/fhir", False),
    ("http://ehr.example.org/fhir", False),
    ("file:///etc/passwd", False),
    ("https://ehr.example.org/fhir/../admin", False),
    ("https://ehr.example.org/fhir/%2e%2e/admin", False),
])
def test_fhir_server_allowlist(url, ok):
    assert fhir_server_allowed(url, ["https://ehr.example.org/fhir"]) is ok
