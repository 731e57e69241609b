"""RFC 9728 protected resource metadata for the MCP endpoint, so that an MCP client that
gets a 401 finds the authorization server that issues the tokens ``auth.jwt`` accepts."""

from __future__ import annotations

import orjson

from sluicegate.asgi import JSON, Scope
from sluicegate.config.auth import JwtAuth

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def base_url(scope: Scope) -> str:
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def resource_of(path: str) -> str | None:
    """The resource path a metadata path is about (``/mcp`` for the bare well-known path,
    which describes the MCP endpoint too); None for other paths."""
    if path == WELL_KNOWN:
        return "/mcp"
    rest = path.removeprefix(WELL_KNOWN)
    if rest != path and (rest == "/mcp" or rest.startswith("/mcp/")):
        return rest
    return None


def metadata(scope: Scope, jwt: JwtAuth, resource: str) -> bytes:
    doc: dict[str, object] = {
        "resource": base_url(scope) + resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "sluicegate MCP gateway",
    }
    if jwt.issuer:
        doc["authorization_servers"] = [jwt.issuer]
    return orjson.dumps(doc)


def challenge(scope: Scope) -> tuple[bytes, bytes]:
    """The ``WWW-Authenticate`` of a 401 on ``/mcp…``: where the metadata is."""
    path: str = scope["path"]
    where = base_url(scope) + WELL_KNOWN + (path if path.startswith("/mcp") else "/mcp")
    return b"www-authenticate", f'Bearer resource_metadata="{where}"'.encode()


CONTENT = [JSON, (b"cache-control", b"max-age=3600")]
