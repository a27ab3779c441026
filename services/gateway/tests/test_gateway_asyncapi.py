"""The event contract served next to the OpenAPI: GET /asyncapi.yaml and /asyncapi.json, public,
the document concerto_contracts.asyncapi builds, not part of the OpenAPI schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import yaml

from concerto_contracts import EVENT_TYPES
from concerto_contracts.asyncapi import document
from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # As test_gateway_app builds it: a fresh app, inside its lifespan. No upstream is called.
    app = create_app(GatewaySettings(api_key="test-customer-key", admin_api_key="test-admin-key"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            yield client


async def test_gateway_serves_the_asyncapi_document_as_yaml_without_a_key(client):
    response = await client.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    served = yaml.safe_load(response.text)
    assert served == document()
    assert served["asyncapi"] == "3.0.0"
    assert set(EVENT_TYPES) <= set(served["components"]["messages"])


async def test_gateway_serves_the_same_document_as_json(client):
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == yaml.safe_load((await client.get("/asyncapi.yaml")).text)


async def test_the_asyncapi_routes_are_not_in_the_openapi(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {path for path in paths if "asyncapi" in path}
    assert (await client.post("/asyncapi.json")).status_code == 405  # read only
