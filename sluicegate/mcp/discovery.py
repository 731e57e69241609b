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


def resource_of(path: str) -> tuple[str | None, str] | None:
    """The gateway a metadata path names (``/gw/<name>/mcp``; None: the one the request
    is for) and the resource path it is about (``/mcp`` for the bare well-known path,
    which describes the MCP endpoint too); None for other paths."""
    if path == WELL_KNOWN:
        return None, "/mcp"
    rest = path.removeprefix(WELL_KNOWN)
    if rest == path:
        return None
    gateway, inner = None, rest
    if rest.startswith("/gw/"):
        gateway, _, tail = rest[4:].partition("/")
        inner = "/" + tail
    if inner == "/mcp" or inner.startswith("/mcp/"):
        return gateway, rest
    return None


def mounted(scope: Scope, gateway: str) -> str:
    """``/gw/<name>`` when the request named its gateway in the path (which the gateway's
    routing has taken off ``path``), else empty: where its MCP endpoint is mounted."""
    prefix = f"/gw/{gateway}"
    raw: bytes = scope.get("raw_path") or b""
    return prefix if raw.startswith(prefix.encode() + b"/") else ""


def metadata(scope: Scope, jwt: JwtAuth, resource: str) -> bytes:
    doc: dict[str, object] = {
        "resource": base_url(scope) + resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "sluicegate MCP gateway",
    }
    if jwt.issuer:
        doc["authorization_servers"] = [jwt.issuer]
    return orjson.dumps(doc)


def challenge(scope: Scope, prefix: str = "") -> tuple[bytes, bytes]:
    """The ``WWW-Authenticate`` of a 401 on ``/mcp…`` (``prefix``: on ``/gw/<name>/mcp…``):
    where the metadata is."""
    path: str = scope["path"]
    resource = prefix + (path if path.startswith("/mcp") else "/mcp")
    where = base_url(scope) + WELL_KNOWN + resource
    return b"www-authenticate", f'Bearer resource_metadata="{where}"'.encode()


CONTENT = [JSON, (b"cache-control", b"max-age=3600")]
