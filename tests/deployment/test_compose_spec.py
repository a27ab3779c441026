"""docker-compose.yml read statically: valid against the Compose Specification's JSON Schema (a
copy in the repository, infra/compose/), and in step with the local launcher
(infra/devstack/stack.py): the same components under the same names, each Python service told at
least what the launcher tells it, every service with a healthcheck, every dependency defined.

No Docker engine is needed (there is none here). The security side of the file is
test_compose_security.py's."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from concerto_runtime.testing import load_module

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "infra" / "compose" / "compose-spec.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)  # anchors and `<<` merges resolved, as compose does
SERVICES = COMPOSE["services"]
PYTHON_IMAGE = "concerto:local"  # every Python service: infra/docker/Dockerfile


def load_stack():
    """infra/devstack/stack.py (standard library only), for its SERVICES table and environment()."""
    return load_module("concerto_devstack", REPO / "infra" / "devstack" / "stack.py")


stack = load_stack()

CONTEXTS = {"order", "payment", "fulfillment", "loyalty", "monitor"}
# What stack.environment() gives every process that no container needs.
LAUNCHER_ONLY = {
    # Tags by which `stack.py down` finds its processes; compose knows its containers.
    "CONCERTO_STACK",
    "CONCERTO_STACK_COMPONENT",
    # The launcher's bytecode cache, under its data dir: the image compiles the bytecode when it is
    # built (UV_COMPILE_BYTECODE=1 in infra/docker/Dockerfile).
    "PYTHONPYCACHEPREFIX",
    # The launcher makes a <NAME>_SERVICE_URL for every row of SERVICES; nobody reads these: the
    # payment service reaches the simulated gateways by CARDPAY_URL and PAYNEXT_URL, the gateway
    # the dev issuer by OAUTH_JWKS_URL and OAUTH_TOKEN_URL, and nothing calls the gateway back.
    "CARDPAY_SERVICE_URL",
    "PAYNEXT_SERVICE_URL",
    "DEV_ISSUER_SERVICE_URL",
    "GATEWAY_SERVICE_URL",
    # The launcher's services send their spans to its Zipkin; compose's go over OTLP to its
    # collector (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER=otlp), ADR 18.
    "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
}
# The launcher gives every process one environment; these matter only to the components named.
USED_ONLY_BY = {
    # The simulated payment gateways and the dev issuer use neither Kafka nor Temporal.
    "KAFKA_BOOTSTRAP_SERVERS": CONTEXTS | {"gateway"},
    "TEMPORAL_ADDRESS": CONTEXTS | {"gateway"},
    # The dev issuer signs customers' tokens with keys of its own, and takes no service's call;
    # the gateway checks no service token. Only the callers sign (ADR 12).
    "SERVICE_CALLER_KEYS": CONTEXTS | {"cardpay", "paynext"},
    "SERVICE_SIGNING_KEY": {"gateway", "payment"},
    # The trusted partners' keys: checked at the edge only.
    "CONCERTO_API_KEY": {"gateway"},
    "CONCERTO_ADMIN_API_KEY": {"gateway"},
    # Compose traces the contexts and the gateway (the simulated gateways and the dev issuer
    # stand for outside parties); the launcher's stack traces every process it starts.
    "OTEL_TRACES_EXPORTER": CONTEXTS | {"gateway"},
    # The timeline's link to an order's trace: the monitor makes it.
    "TRACE_VIEWER_URL": {"monitor"},
    # The gateway routes to the contexts by these.
    **{f"{context.upper()}_SERVICE_URL": {"gateway"} for context in CONTEXTS},
}
# Services compose cannot probe from inside: the image has no shell and no HTTP client.
NO_PROBE = {
    "otel-collector": "built FROM scratch (open-telemetry/opentelemetry-collector-contrib#30798)",
}


# --- interpolation, as compose does it before it validates -----------------------------------

VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Every string value with ${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+alternative} (and
    their forms without the colon) and $$ replaced as compose does; keys are left alone."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        given, op, arg = env.get(name), match["op"] or "", match["arg"] or ""
        usable = given is not None and (given != "" or not op.startswith(":"))
        if op.endswith("-"):
            return given if usable else arg
        if op.endswith("?"):
            if not usable:
                raise ValueError(f"compose refuses to start: {name}: {arg}")
            return given
        if op.endswith("+"):
            return arg if usable else ""
        return given or ""

    return VARIABLE.sub(one, value)


def required_variables() -> set[str]:
    return {match["name"] for match in VARIABLE.finditer(COMPOSE_TEXT) if match["op"] in (":?", "?")}


def validation_errors(document: Any) -> list[str]:
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}" for error in validator.iter_errors(document)]


def environment(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment") or {}
    if isinstance(given, list):  # the KEY=VALUE form
        given = dict(item.split("=", 1) if "=" in item else (item, "") for item in given)
    return {name: str(value) for name, value in given.items()}


def image_environment() -> set[str]:
    """The names the Python image sets itself (ENV in infra/docker/Dockerfile's last stage)."""
    text = re.sub(r"\\\n", " ", (REPO / "infra" / "docker" / "Dockerfile").read_text())
    last_stage = re.split(r"^FROM\s", text, flags=re.MULTILINE)[-1]
    return {
        name
        for line in last_stage.splitlines() if line.startswith("ENV ")
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line)
    }


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}, in either of its forms."""
    given = service.get("depends_on") or {}
    if isinstance(given, list):
        return {name: "service_started" for name in given}
    return {name: options.get("condition", "service_started") for name, options in given.items()}


# --- (a) the Compose Specification ----------------------------------------------------------


def test_the_schema_is_the_compose_specifications():
    assert SCHEMA["title"] == "Compose Specification"
    jsonschema.validators.validator_for(SCHEMA).check_schema(SCHEMA)
    assert "Source" in (SCHEMA_FILE.parent / "README.md").read_text(), "infra/compose/README.md says where it comes from"


def test_docker_compose_yml_is_valid_as_written():
    assert not validation_errors(COMPOSE)


def test_docker_compose_yml_is_valid_once_interpolated():
    # Dummy values for the secrets compose requires (what `make compose-env` writes); the rest
    # (REPLICAS, the optional API keys) take their defaults, as on a plain `docker compose up`.
    env = {name: f"dummy-{name.lower()}" for name in required_variables()}
    assert {"GATEWAY_SIGNING_KEY", "PAYMENT_PUBLIC_KEY", "CONCERTO_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= set(env)
    document = interpolate(COMPOSE, env)
    assert not validation_errors(document)
    assert document["services"]["order"]["deploy"]["replicas"] == "1"
    assert document["services"]["gateway"]["environment"]["API_KEYS_ENABLED"] == ""
    assert "${" not in json.dumps(document)
    with pytest.raises(ValueError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate(COMPOSE, {name: value for name, value in env.items() if name != "GRAFANA_ADMIN_PASSWORD"})


def _broken(change) -> dict[str, Any]:
    document = copy.deepcopy(COMPOSE)
    change(document)
    return document


BROKEN = {
    "ports as a number": lambda d: d["services"]["gateway"].update(ports=8080),
    "ports as a map": lambda d: d["services"]["gateway"].update(ports={8080: 8080}),
    "an unknown top-level key": lambda d: d.update(servces={}),
    "an unknown service key": lambda d: d["services"]["order"].update(imagee="concerto:local"),
    "an unknown dependency condition": lambda d: d["services"]["gateway"]["depends_on"]["order"].update(condition="service_ready"),
    "a healthcheck test as a number": lambda d: d["services"]["db"]["healthcheck"].update(test=1),
    "a volume as a number": lambda d: d["services"]["db"].update(volumes=[5432]),
}


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_compose_file_fails_validation(change):
    assert validation_errors(_broken(change))


# --- (b) in step with the launcher ----------------------------------------------------------


# The launcher's components compose runs otherwise: its trace viewer is Jaeger, behind a collector.
NOT_IN_COMPOSE = {"zipkin": "jaeger"}


def test_every_component_the_launcher_starts_is_a_compose_service():
    launched = {component.name for component in stack.components_of(1)} - set(NOT_IN_COMPOSE)
    assert set(NOT_IN_COMPOSE.values()) <= set(SERVICES)
    assert {"kafka", "temporal"} | {name for name, _, _ in stack.SERVICES} <= launched
    assert launched <= set(SERVICES), f"not in docker-compose.yml: {sorted(launched - set(SERVICES))}"


@pytest.fixture
def launcher_environment(tmp_path, monkeypatch):
    """component name -> the names stack.environment() sets for it, with nothing inherited."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    return {
        component.name: set(stack.environment(tmp_path, component))
        for component in stack.components_of(1)
        if component.name in {name for name, _, _ in stack.SERVICES}
    }


@pytest.mark.parametrize("name", [name for name, _, _ in stack.SERVICES])
def test_each_python_service_is_told_what_the_launcher_tells_it(name, launcher_environment):
    service = SERVICES[name]
    assert service.get("image") == PYTHON_IMAGE
    needed = {
        variable
        for variable in launcher_environment[name] - LAUNCHER_ONLY
        if name in USED_ONLY_BY.get(variable, {name})
    }
    assert {"HTTP_PORT"} <= needed
    given = set(environment(service)) | image_environment()
    assert not needed - given, f"{name} lacks in docker-compose.yml what the launcher gives it: {sorted(needed - given)}"


def test_the_launcher_only_lists_name_what_the_launcher_gives(launcher_environment):
    given = set().union(*launcher_environment.values())
    assert LAUNCHER_ONLY <= given, f"stale entries: {sorted(LAUNCHER_ONLY - given)}"
    assert set(USED_ONLY_BY) <= given, f"stale entries: {sorted(set(USED_ONLY_BY) - given)}"


def test_the_services_reach_each_other_by_compose_name_and_launcher_port():
    ports = {name: port for name, port, _ in stack.SERVICES}
    for name, service in SERVICES.items():
        if service.get("image") == PYTHON_IMAGE:
            assert int(environment(service)["HTTP_PORT"]) == ports[name], f"{name} listens elsewhere than the launcher's port"
        for variable, value in environment(service).items():
            for host, port in re.findall(r"(?:^|[/@,])([a-z][a-z0-9-]*):(\d+)", value):
                if host == "localhost":  # as the host's browser sees it (OAUTH_ISSUER, TEMPORAL_UI_URL)
                    continue
                assert host in SERVICES, f"{name}: {variable}={value} names no compose service"
                if host in ports:
                    assert int(port) == ports[host], f"{name}: {variable}={value}, but {host} listens on {ports[host]}"


def test_every_service_has_a_healthcheck():
    for name, service in SERVICES.items():
        check = service.get("healthcheck") or {}
        if name in NO_PROBE:
            assert not check, f"{name} has a healthcheck now: take it off NO_PROBE"
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck in docker-compose.yml"
        if service.get("image") == PYTHON_IMAGE:
            # The image's own probe script (its HEALTHCHECK's too), on the service's HTTP_PORT.
            assert check["test"] == ["CMD", "python", "/app/healthcheck.py"], f"{name}: {check['test']}"
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    assert "COPY infra/docker/healthcheck.py /app/healthcheck.py" in dockerfile


# --- (c) dependencies and files -------------------------------------------------------------


def test_every_dependency_is_a_defined_service_that_can_be_waited_for():
    for name, service in SERVICES.items():
        for dependency, condition in dependencies(service).items():
            assert dependency in SERVICES, f"{name} depends on {dependency}, which is not defined"
            assert dependency != name
            if condition == "service_healthy":
                assert SERVICES[dependency].get("healthcheck"), f"{name} waits for {dependency} to be healthy: it has no healthcheck"


def test_every_file_compose_mounts_or_builds_from_is_in_the_repository():
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            elif source:
                assert source in (COMPOSE.get("volumes") or {}), f"{name} mounts volume {source}, which is not declared"
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).exists(), f"{name} builds from a missing Dockerfile"
