"""A real authorization server for the OAuth tests: oidc-provider (Node, from .ci/node) run by
``oidc_server.mjs`` on 127.0.0.1, and what a test does with it: sign a user in through the
authorization-code flow with PKCE (its login and consent pages driven as a browser would),
rotate its keys, and, for the refusals only, sign tokens with its own key that no honest
issuer would issue (expired, for another audience...)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.servers import free_port, wait_listening

NODE_DIR = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules"
NODE = NODE_DIR / ".bin" / "node"
PROVIDER = NODE_DIR / "oidc-provider" / "lib" / "index.js"
SCRIPT = Path(__file__).with_name("oidc_server.mjs")
CLIENT_ID = "test-client"
REDIRECT_URI = "http://127.0.0.1/callback"
INTROSPECTION_CLIENT = "apex-mcp"
ALL_SCOPES = "apex:read apex:write apex:research"


def missing() -> str | None:
    """Why the authorization server cannot run here (None: it can)."""
    if not NODE.exists() or not PROVIDER.exists():
        return "oidc-provider is not installed: run .ci/node/install"
    return None


def new_key(kid: str) -> dict[str, Any]:
    """A private RSA signing key as a JWK."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "kid", "alg", "use")}


@dataclass
class AuthorizationServer:
    issuer: str
    keys: list[dict[str, Any]]
    introspection_secret: str

    def sign_in(self, user: str, resource: str, scope: str = ALL_SCOPES) -> str:
        """An access token for ``user`` and ``resource``: the authorization-code flow with
        PKCE, its login and consent pages answered as a person would."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "resource": resource,
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        }
        redirected = self.authorize(f"{self.issuer}/auth?{urlencode(query)}", user)
        token = httpx2.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": redirected["code"],
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID,
                "code_verifier": verifier,
                "resource": resource,
            },
            timeout=30,
        )
        assert token.status_code == 200, token.text
        access: str = token.json()["access_token"]
        return access

    def authorize(self, url: str, user: str) -> dict[str, str]:
        """What a browser sent to ``url`` brings back to the client once ``user`` has
        logged in and consented: the query of the redirect to it (code, state, iss)."""
        with httpx2.Client(timeout=30) as browser:
            response = browser.get(url)
            for _ in range(12):
                if response.status_code in (302, 303):
                    location = urljoin(str(response.url), response.headers["location"])
                    if not location.startswith(self.issuer):  # back to the client
                        query = dict(parse_qsl(urlsplit(location).query))
                        assert "code" in query, location
                        return query
                    response = browser.get(location)
                elif response.status_code == 200 and "/interaction/" in str(response.url):
                    form = (
                        {"prompt": "login", "login": user, "password": "any"}
                        if 'name="login"' in response.text
                        else {"prompt": "consent"}
                    )
                    response = browser.post(str(response.url), data=form)
                else:
                    shown = response.text[:500]
                    raise AssertionError(f"{response.status_code} at {response.url}: {shown}")
        raise AssertionError("the sign-in took more than 12 steps")

    def revoke(self, token: str) -> None:
        """Revoke an access token (RFC 7009), as its client would on sign-out."""
        done = httpx2.post(
            f"{self.issuer}/token/revocation",
            data={"token": token, "token_type_hint": "access_token", "client_id": CLIENT_ID},
            timeout=30,
        )
        assert done.status_code == 200, done.text

    def rotate(self) -> dict[str, Any]:
        """A new signing key, published first; the old one published still."""
        key = new_key(f"key-{len(self.keys) + 1}")
        self.keys.insert(0, key)
        done = httpx2.post(f"{self.issuer}/__rotate", json={"keys": self.keys}, timeout=30)
        assert done.status_code == 204, done.text
        return key

    def forge(
        self, claims: dict[str, Any], *, key: dict[str, Any] | None = None, **headers: Any
    ) -> str:
        """A token signed with the issuer's current key (or ``key``), with the claims given
        and the usual ones not given (for the refusals: what the issuer would never sign)."""
        key = key or self.keys[0]
        now = int(time.time())
        full = {"iss": self.issuer, "iat": now, "exp": now + 300, "sub": "mallory", **claims}
        full = {k: v for k, v in full.items() if v is not None}
        private = RSAAlgorithm.from_jwk(json.dumps(key))
        headers = {"kid": key["kid"], **headers}
        return jwt.encode(full, private, algorithm="RS256", headers=headers)  # type: ignore[arg-type]


@contextmanager
def authorization_server(opaque_resources: Sequence[str] = ()) -> Iterator[AuthorizationServer]:
    """oidc-provider on 127.0.0.1, until the block ends."""
    port = free_port()
    keys = [new_key("key-1")]
    secret = secrets.token_urlsafe(16)
    process = subprocess.Popen(
        [str(NODE), str(SCRIPT)],
        env={
            **os.environ,
            "PORT": str(port),
            "KEYS": json.dumps(keys),
            "OIDC_PROVIDER_MODULE": PROVIDER.as_uri(),
            "OPAQUE_RESOURCES": json.dumps(list(opaque_resources)),
            "INTROSPECTION_SECRET": secret,
            "NODE_ENV": "test",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, process)
        yield AuthorizationServer(f"http://127.0.0.1:{port}", keys, secret)
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
