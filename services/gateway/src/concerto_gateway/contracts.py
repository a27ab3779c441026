"""The event contract, next to the OpenAPI: the AsyncAPI 3.0 document of the events the contexts
publish to each other on Kafka, as `GET /asyncapi.yaml` and `GET /asyncapi.json`.

Built by concerto_contracts.asyncapi, the code the services themselves speak, rather than read
from docs/contracts/asyncapi.yaml: the docs are not in the image, and the generated document
cannot drift from the running code (a contracts test keeps the checked-in copy equal to it).
Public like /openapi.json: it describes message shapes, no data; not part of the HTTP API, so
not in the OpenAPI schema."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Response

from concerto_contracts import asyncapi

router = APIRouter(include_in_schema=False)


@cache
def _document() -> dict:
    return asyncapi.document()


@cache
def _yaml() -> str:
    return asyncapi.to_yaml(_document())


@router.get("/asyncapi.yaml")
async def asyncapi_yaml() -> Response:
    return Response(_yaml(), media_type="application/yaml")


@router.get("/asyncapi.json")
async def asyncapi_json() -> Response:
    return Response(asyncapi.to_json(_document()), media_type="application/json")
