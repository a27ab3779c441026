"""docker-compose.yml as a security review reads it (OWASP API8, misconfiguration): only what a
user needs is published to the host, and no secret has a value anyone could know from the
repository. Read statically: there is no Docker engine here, and none is needed to check this."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# What a user of the compose stack opens: the API and console, the token endpoint, the operator UIs.
# Grafana (anonymous visitors may only view; its admin's password is a required secret) and
# Prometheus (read-only: no admin API, no lifecycle endpoints) are the metrics' UIs, as Jaeger is
# the traces': a demo user opens them (http://localhost:3000, http://localhost:9090).
# Locust's web UI (the `load` profile only) starts the load a demo shows.
PUBLISHED = {"gateway", "dev-issuer", "temporal-ui", "jaeger", "grafana", "prometheus", "locust"}
SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|API_KEY|SIGNING_KEY")
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")  # no value: compose refuses to start
OPTIONAL_EMPTY = re.compile(r"^\$\{(?P<name>[A-Z_]+):-\}$")  # empty unless given (the API keys: off)


def environment(service: dict) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def test_only_the_edge_and_the_operator_uis_are_published():
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == PUBLISHED, f"published to the host beyond what a user needs: {sorted(published - PUBLISHED)}"


def test_no_secret_has_a_value_in_the_repository():
    for name, service in SERVICES.items():
        for variable, value in environment(service).items():
            if SECRET_NAME.search(variable) and variable != "API_KEYS_ENABLED":
                assert REQUIRED.match(value) or OPTIONAL_EMPTY.match(value), f"{name}: {variable} has a value in the file: {value!r}"
            if "://" in value and "@" in value:  # a URL with credentials in it
                credentials = value.split("://", 1)[1].split("@", 1)[0]
                password = credentials.split(":", 1)[1]
                assert REQUIRED.match(password), f"{name}: {variable} carries a literal password"


def test_each_caller_signs_with_a_key_of_its_own_and_the_others_hold_public_keys():
    """ADR 12: holding one service's credential does not let it act as another. The gateway and
    payment each sign with their own key; every service that checks tokens has the public keys."""
    python_services = [name for name, service in SERVICES.items() if service.get("image") == "concerto:local"]
    assert {"order", "payment", "fulfillment", "loyalty", "monitor", "gateway", "cardpay", "paynext"} <= set(python_services)
    signing_keys = {name: environment(SERVICES[name]).get("SERVICE_SIGNING_KEY") for name in python_services}
    assert {name for name, key in signing_keys.items() if key} == {"gateway", "payment"}, "only the callers sign"
    own = {name: REQUIRED.match(signing_keys[name])["name"] for name in ("gateway", "payment")}
    assert own == {"gateway": "GATEWAY_SIGNING_KEY", "payment": "PAYMENT_SIGNING_KEY"}
    for name in python_services:
        if name not in ("dev-issuer", "gateway"):
            caller_keys = environment(SERVICES[name]).get("SERVICE_CALLER_KEYS", "")
            assert "${GATEWAY_PUBLIC_KEY:?" in caller_keys and "${PAYMENT_PUBLIC_KEY:?" in caller_keys, f"{name} would trust no one"
            assert "SIGNING_KEY" not in caller_keys


def test_the_development_issuer_runs_only_in_the_demo_profile():
    """Its one shared password signs anyone in, `operator` included: never in a plain `docker
    compose up`, and nothing there waits for it."""
    assert SERVICES["dev-issuer"].get("profiles") == ["demo"]
    assert SERVICES["locust"].get("profiles") == ["load"], "load for demos runs only when asked for"
    for name, service in SERVICES.items():
        if name not in ("dev-issuer", "locust"):
            assert not service.get("profiles"), f"{name} is in a profile: the default stack would lack it"
            assert "dev-issuer" not in (service.get("depends_on") or {}), f"{name} waits for the demo profile's issuer"


def test_make_compose_env_writes_every_secret_compose_requires(tmp_path):
    required = {
        match["name"]
        for service in SERVICES.values()
        for value in environment(service).values()
        for match in re.finditer(r"\$\{(?P<name>[A-Z_]+):\?", value)
    }
    (tmp_path / "Makefile").write_bytes((REPO / "Makefile").read_bytes())
    subprocess.run(["make", "-s", "compose-env"], cwd=tmp_path, check=True, capture_output=True)
    written = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
    assert set(written) == required
    assert all(len(value) >= 32 for value in written.values()), "long random values"
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0, "readable by its owner only"


def test_the_metrics_uis_are_published_read_only():
    prometheus = " ".join(SERVICES["prometheus"]["command"])
    for flag in ("--web.enable-admin-api", "--web.enable-lifecycle", "--web.enable-remote-write-receiver"):
        assert flag not in prometheus, f"Prometheus is published: {flag} would let anyone change it"
    grafana = environment(SERVICES["grafana"])
    if grafana.get("GF_AUTH_ANONYMOUS_ENABLED") == "true":
        assert grafana.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer", "anonymous visitors may only look"
    assert grafana.get("GF_USERS_ALLOW_SIGN_UP") == "false"
