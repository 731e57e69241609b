"""The one error tree.

Every failure a client can see is a ``GatewayError``; each subclass knows its
HTTP status, its OpenAI ``type`` and ``code``, and the Anthropic type used on
``/v1/messages``. Nothing else is raised across the request path.

    SluicegateError
     ├── ConfigError                 config that cannot be loaded (a list of issues)
     ├── TransportError              an attempt failed below HTTP (never shown as is)
     │    ├── ConnectFailed          could not connect, or the connection dropped
     │    ├── TimedOut               connect, read or total timeout
     │    └── CredentialsRefused     a token endpoint refused the gateway's credentials
     └── GatewayError                answered to a client
          ├── InvalidRequest         400 invalid_request_error
          │    ├── ContentBlocked    400 code content_blocked (guardrails)
          │    └── NoAbleTarget      400 code no_able_target (smart routing: no target can serve it)
          ├── AuthenticationError    401 authentication_error
          ├── PermissionDenied       403 permission_error
          ├── NotFound               404 not_found_error
          │    └── ModelNotFound     404 code model_not_found
          ├── MethodNotAllowed       405 invalid_request_error, code method_not_allowed
          ├── Conflict               409 invalid_request_error (Admin API: read-only, in use, taken)
          ├── PreconditionFailed     412 invalid_request_error, code etag_mismatch (Admin API)
          ├── RequestTimeout         408 invalid_request_error, code request_timeout
          ├── RequestTooLarge        413 invalid_request_error, code request_too_large
          ├── HeadTooLarge           431 invalid_request_error, code request_header_fields_too_large
          ├── Unprocessable          422 invalid_request_error, code validation_failed (Admin API)
          ├── RateLimited            429 rate_limit_error
          ├── UpstreamStatusError    the provider's own 4xx, status kept
          ├── UpstreamError          502 upstream_error
          ├── NoHealthyUpstream      503 upstream_unavailable, code no_healthy_upstream
          ├── ShuttingDown           503 upstream_unavailable, code shutting_down (a stream cut)
          ├── StoreUnavailable       503 upstream_unavailable, code store_unavailable (Admin API)
          └── UpstreamTimeout        504 timeout_error
               └── StreamTimeout     504 code stream_timeout (a stream past stream_timeout)
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class SluicegateError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(SluicegateError):
    """A config that cannot be used; ``issues`` are ``path: message`` lines."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        super().__init__("\n".join(issues))


class TransportError(SluicegateError):
    """An upstream attempt that failed below HTTP; the handler decides what the client sees."""

    kind = "connect"


class ConnectFailed(TransportError):
    kind = "connect"


class TimedOut(TransportError):
    kind = "timeout"


class AnswerTooLarge(TransportError):
    """A whole answer bigger than ``gateway.max_answer_bytes``: never held in memory."""

    kind = "invalid"


class CredentialsRefused(TransportError):
    """A token endpoint (Entra ID, Google) refused the service's credentials: not retried."""

    kind = "auth"


class RedisCallFailed(SluicegateError):
    """A call of the lean Redis client (stores/resp.py) that Redis refused or did not
    answer in time; the rate limiter treats it as counters out of reach."""


# Anthropic names the statuses that have no type of their own in its API.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "invalid_request_error",
    413: "request_too_large",
    431: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class GatewayError(SluicegateError):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return self.status

    @property
    def client_type(self) -> str:
        """The ``type`` the client's OpenAI-shape answer carries; the audit log records it."""
        return self.type

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.client_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        kind = _ANTHROPIC_TYPES.get(self.http_status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def body(self, dialect: str) -> bytes:
        if dialect == "anthropic":
            return orjson.dumps(self.anthropic_body())
        return orjson.dumps(self.openai_body())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class NoAbleTarget(InvalidRequest):
    """No target of the set a rule chose can serve the request (docs/routing.md);
    ``explain`` is the line the audit row and ``x-sluicegate-route`` keep."""

    default_code = "no_able_target"

    def __init__(self, message: str, explain: str) -> None:
        super().__init__(message, param="model")
        self.explain = explain


class ContentBlocked(InvalidRequest):
    """A guardrail refused a request or an answer (docs/guardrails.md)."""

    default_code = "content_blocked"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class PreconditionFailed(GatewayError):
    status = 412
    type = "invalid_request_error"
    default_code = "etag_mismatch"


class Unprocessable(GatewayError):
    """Invalid config written through the Admin API; ``issues`` are ``(path, message)``."""

    status = 422
    type = "invalid_request_error"
    default_code = "validation_failed"

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        text = "; ".join(f"{path}: {message}" if path else message for path, message in issues)
        super().__init__(text, param=issues[0][0] if issues and issues[0][0] else None)
        self.issues = issues

    def openai_body(self) -> dict[str, Any]:
        body = super().openai_body()
        body["error"]["issues"] = [{"path": path, "message": msg} for path, msg in self.issues]
        return body


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class HeadTooLarge(GatewayError):
    """A request line and headers over ``gateway.max_header_bytes`` or ``max_headers``."""

    status = 431
    type = "invalid_request_error"
    default_code = "request_header_fields_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamStatusError(GatewayError):
    """A provider's own 4xx answer, passed on with its status."""

    _TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }

    def __init__(
        self,
        upstream_status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.upstream_status = upstream_status
        self.error_type = error_type or self._TYPES.get(upstream_status, "invalid_request_error")

    @property
    def http_status(self) -> int:
        return self.upstream_status

    @property
    def client_type(self) -> str:
        return self.error_type


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"


class NoHealthyUpstream(GatewayError):
    status = 503
    type = "upstream_unavailable"
    default_code = "no_healthy_upstream"


class StoreUnavailable(GatewayError):
    """The control plane's store (gateway.store) did not answer; nothing was written."""

    status = 503
    type = "upstream_unavailable"
    default_code = "store_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    default_code = "upstream_timeout"


class StreamTimeout(UpstreamTimeout):
    """A stream still running at its service's ``stream_timeout``: the gateway ends it."""

    default_code = "stream_timeout"


class ShuttingDown(GatewayError):
    """A stream still running when the server's drain time ends: the gateway ends it."""

    status = 503
    type = "upstream_unavailable"
    default_code = "shutting_down"
