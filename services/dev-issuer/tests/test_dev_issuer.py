"""The development issuer hands out tokens the gateway can verify with nothing but its JWKS,
and only for the demo password; the operator's token carries the admin role."""

from __future__ import annotations

import httpx
import jwt
import pytest

from concerto_dev_issuer.app import IssuerSettings, create_app, signing_key


@pytest.fixture
async def issuer(tmp_path):
    settings = IssuerSettings(OAUTH_ISSUER="http://issuer.test", OAUTH_AUDIENCE="concerto-api", DEV_ISSUER_PASSWORD="demo")
    app = create_app(settings, signing_key(tmp_path / "key.pem"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://issuer.test") as client:
        yield client


async def token_for(issuer: httpx.AsyncClient, username: str, password: str = "demo") -> httpx.Response:
    return await issuer.post("/token", data={"grant_type": "password", "username": username, "password": password})


async def test_a_demo_customer_gets_a_token_the_jwks_verifies(issuer):
    answer = await token_for(issuer, "cust-42")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)

    [key] = (await issuer.get("/jwks.json")).json()["keys"]
    claims = jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["RS256"], audience="concerto-api", issuer="http://issuer.test")
    assert (claims["sub"], claims["roles"]) == ("cust-42", ["customer"])
    assert jwt.get_unverified_header(body["access_token"])["kid"] == key["kid"]
    discovery = (await issuer.get("/.well-known/openid-configuration")).json()
    assert discovery["jwks_uri"] == "http://issuer.test/jwks.json"


async def test_the_operator_gets_the_admin_role(issuer):
    token = (await token_for(issuer, "operator")).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["admin"]


@pytest.mark.parametrize(("username", "password"), [("cust-42", "wrong"), ("not a customer id", "demo")])
async def test_no_token_without_the_demo_password_or_for_an_odd_name(issuer, username, password):
    answer = await token_for(issuer, username, password)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


async def test_the_key_outlives_a_restart(tmp_path):
    first, again = signing_key(tmp_path / "key.pem"), signing_key(tmp_path / "key.pem")
    assert first.private_numbers() == again.private_numbers()
