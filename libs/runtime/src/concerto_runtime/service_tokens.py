"""Calls between Concerto's own processes carry a service token: a short JWT (EdDSA) that the
caller signs with a key of its own (`SERVICE_SIGNING_KEY`: the gateway's, payment's), naming who
calls (`iss`) and whom (`aud`), valid for a minute. A service checks it with that caller's public
key (`SERVICE_CALLER_KEYS`, a JSON object: caller -> public key) and answers only the callers it
trusts; everything but its health checks needs such a token (ADR 12). The services hold public
keys, which sign nothing: a service broken into can sign as itself, never as the gateway.
Without caller keys a service trusts no one.

A key is one line: base64 of its DER form (PKCS #8 for a signing key, SubjectPublicKeyInfo for a
public key), as `openssl genpkey -algorithm ed25519 -outform DER | openssl base64 -A` makes one
(`make compose-env`) and `new_key_pair()` does (the local stack, the tests)."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Request

from concerto_runtime.problems import Problem

HEADER = "X-Service-Token"
LIFETIME_SECONDS = 60
ALGORITHM = "EdDSA"  # Ed25519; the only algorithm a service accepts


def new_key_pair() -> tuple[str, str]:
    """A fresh signing key and its public key, encoded as the settings carry them."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def signing_key(encoded: str) -> Ed25519PrivateKey:
    key = serialization.load_der_private_key(base64.b64decode(encoded, validate=True), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("a service signing key is an Ed25519 key")
    return key


def public_key(encoded: str) -> Ed25519PublicKey:
    key = serialization.load_der_public_key(base64.b64decode(encoded, validate=True))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("a service caller's key is an Ed25519 public key")
    return key


def service_token(key: str | Ed25519PrivateKey, caller: str, audience: str) -> str:
    now = int(time.time())
    signer = signing_key(key) if isinstance(key, str) else key
    return jwt.encode({"iss": caller, "aud": audience, "iat": now, "exp": now + LIFETIME_SECONDS}, signer, algorithm=ALGORITHM)


class SignedAs(httpx.Auth):
    """An httpx auth that signs each request as `caller`, for `audience`, when it is sent."""

    def __init__(self, key: str, caller: str, audience: str) -> None:
        self.key, self.caller, self.audience = signing_key(key), caller, audience

    def auth_flow(self, request: httpx.Request):
        request.headers[HEADER] = service_token(self.key, self.caller, self.audience)
        yield request


def caller_of(token: str, audience: str, caller_keys: Mapping[str, str]) -> str:
    """Who signed the token, checked with that caller's own public key, if it is for `audience`
    and still valid; raises jwt.PyJWTError (a caller without a key here included)."""
    claimed = jwt.decode(token, options={"verify_signature": False}).get("iss")
    key = caller_keys.get(claimed) if isinstance(claimed, str) else None
    if key is None:
        raise jwt.InvalidIssuerError("signed by a caller this service knows no key of")
    jwt.decode(token, public_key(key), algorithms=[ALGORITHM], audience=audience, issuer=claimed, options={"require": ["iss", "exp", "iat"]})
    return claimed


@dataclass(frozen=True)
class ServiceIdentity:
    """Who an app is (the audience its callers' tokens must name) and the public key of each
    caller it can check. Every app that takes service tokens keeps one in
    `app.state.service_identity`."""

    name: str
    caller_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.caller_keys.values():
            public_key(key)  # a key that is no key stops the app at its start, not at a call


def trusted_callers(*callers: str):
    """Dependency for an app's routes: the call must carry a valid token from one of `callers`."""

    async def check(request: Request) -> str:
        identity: ServiceIdentity = request.app.state.service_identity
        token = request.headers.get(HEADER)
        if not identity.caller_keys or token is None:
            raise Problem(401, "Unauthorized", f"an {HEADER} from {' or '.join(callers)} is required")
        try:
            caller = caller_of(token, identity.name, identity.caller_keys)
        except jwt.PyJWTError:
            raise Problem(401, "Unauthorized", f"the {HEADER} is not valid for the {identity.name} service") from None
        if caller not in callers:
            raise Problem(403, "Forbidden", f"the {identity.name} service does not take this call from {caller}")
        return caller

    return check
