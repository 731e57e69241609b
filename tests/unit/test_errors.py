from __future__ import annotations

import orjson
import pytest

from sluicegate import errors


@pytest.mark.parametrize(
    ("error", "status", "kind", "code", "anthropic"),
    [
        (
            errors.InvalidRequest("x", param="model"),
            400,
            "invalid_request_error",
            None,
            "invalid_request_error",
        ),
        (
            errors.AuthenticationError("x"),
            401,
            "authentication_error",
            "invalid_api_key",
            "authentication_error",
        ),
        (errors.PermissionDenied("x"), 403, "permission_error", None, "permission_error"),
        (errors.ModelNotFound("x"), 404, "not_found_error", "model_not_found", "not_found_error"),
        (
            errors.RequestTooLarge("x"),
            413,
            "invalid_request_error",
            "request_too_large",
            "request_too_large",
        ),
        (
            errors.RateLimited("x"),
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            "rate_limit_error",
        ),
        (errors.UpstreamError("x"), 502, "upstream_error", None, "api_error"),
        (
            errors.NoHealthyUpstream("x"),
            503,
            "upstream_unavailable",
            "no_healthy_upstream",
            "overloaded_error",
        ),
        (errors.UpstreamTimeout("x"), 504, "timeout_error", "upstream_timeout", "timeout_error"),
        (errors.UpstreamStatusError(422, "x"), 422, "invalid_request_error", None, "api_error"),
    ],
)
def test_each_error_knows_both_shapes(
    error: errors.GatewayError, status: int, kind: str, code: str | None, anthropic: str
) -> None:
    assert error.http_status == status
    body = orjson.loads(error.body("openai"))
    assert body["error"]["type"] == kind
    assert body["error"]["code"] == code
    assert body["error"]["message"] == "x"
    other = orjson.loads(error.body("anthropic"))
    assert other == {"type": "error", "error": {"type": anthropic, "message": "x"}}
