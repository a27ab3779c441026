"""The development issuer (port 8300): OAuth 2.0 access tokens for the demo customers and the
demo operator, signed RS256, with the public key published as a JWKS. It stands in for a real
identity provider (Keycloak, Auth0, Entra ID): the gateway knows only the issuer, the audience
and the JWKS URL, so a real one replaces it by configuration alone (ADR 11).

    GET  /.well-known/openid-configuration    issuer, jwks_uri, token_endpoint
    GET  /jwks.json                           the public signing key(s)
    POST /token   grant_type=password&username=cust-42&password=demo
                  -> {"access_token": "eyJ...", "token_type": "Bearer", "expires_in": 3600}

Any customer id is a demo customer (the password is the demo password, `demo` unless
DEV_ISSUER_PASSWORD says otherwise); the username `operator` gets the admin role. This is for a
laptop and a workshop, never for production: compose runs it only in its `demo` profile.

    python -m concerto_dev_issuer      (HTTP_PORT, default 8300; CONCERTO_DATA_DIR keeps the key)
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Annotated

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from concerto_runtime import Settings, serve

NAME, DEFAULT_PORT = "dev-issuer", 8300
OPERATOR = "operator"
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # what the gateway accepts as an id


class IssuerSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    issuer: str = Field("http://127.0.0.1:8300", alias="OAUTH_ISSUER")
    audience: str = Field("concerto-api", alias="OAUTH_AUDIENCE")
    password: str = Field("demo", alias="DEV_ISSUER_PASSWORD")
    lifetime_seconds: int = Field(3600, alias="DEV_ISSUER_TOKEN_SECONDS")


def signing_key(path: Path) -> rsa.RSAPrivateKey:
    """The issuer's key, made on the first start and kept, so tokens outlive a restart."""
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return key


def oauth_error(error: str, description: str) -> JSONResponse:
    """RFC 6749 section 5.2."""
    return JSONResponse({"error": error, "error_description": description}, status_code=400, headers={"Cache-Control": "no-store"})


def create_app(settings: IssuerSettings, key: rsa.RSAPrivateKey) -> FastAPI:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    kid = public["kid"] = jwt.PyJWK(public).key_id or secrets.token_hex(8)
    public |= {"use": "sig", "alg": "RS256"}
    app = FastAPI(title="Concerto development issuer (not for production)")

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict:
        return {
            "issuer": settings.issuer,
            "jwks_uri": f"{settings.issuer}/jwks.json",
            "token_endpoint": f"{settings.issuer}/token",
            "grant_types_supported": ["password"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    @app.get("/jwks.json")
    async def jwks() -> dict:
        return {"keys": [public]}

    @app.post("/token")
    async def token(
        grant_type: Annotated[str, Form()], username: Annotated[str, Form(max_length=64)], password: Annotated[str, Form(max_length=200)]
    ) -> JSONResponse:
        if grant_type != "password":
            return oauth_error("unsupported_grant_type", "only the password grant, for demo users")
        if not CUSTOMER_ID.match(username) or not secrets.compare_digest(password.encode(), settings.password.encode()):
            return oauth_error("invalid_grant", "unknown user or wrong password")
        now = int(time.time())
        claims = {
            "iss": settings.issuer,
            "aud": settings.audience,
            "sub": username,
            "iat": now,
            "exp": now + settings.lifetime_seconds,
            "roles": ["admin"] if username == OPERATOR else ["customer"],
        }
        access_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": settings.lifetime_seconds},
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    @app.get("/health/live")
    async def live() -> dict:
        return {"status": "alive"}

    return app


def main() -> None:
    settings = Settings()
    key = signing_key(Path(settings.data_dir) / "dev-issuer" / "signing-key.pem")
    serve(create_app(IssuerSettings(), key), NAME, settings.http_port or DEFAULT_PORT, settings)
