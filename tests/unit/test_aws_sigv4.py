"""SigV4: what our Bedrock path signs verifies against botocore's own signature for a fixed
clock, against AWS's published test vector, and against the algorithm as AWS documents it."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from yarl import URL

from sluicegate.config.model import Credentials as ConfigCredentials
from sluicegate.config.model import Service
from sluicegate.credentials import build_signer
from sluicegate.credentials.aws import AwsSigV4
from sluicegate.providers.base import UpstreamRequest
from sluicegate.providers.bedrock import BedrockAdapter

FROZEN = datetime.datetime(2024, 5, 17, 9, 30, 15)
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BASE = "https://bedrock-runtime.eu-west-3.amazonaws.com"
MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: FROZEN)


def bedrock_request(stream: bool = False) -> UpstreamRequest:
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    request = BedrockAdapter().build("chat", body, b"", MODEL, BASE)
    request.headers["x-team"] = "  a   b "  # a service header, added before signing
    return request


def botocore_authorization(request: UpstreamRequest, token: str | None = None) -> str:
    """botocore's signature for the same method, URL, headers and body, computed apart."""
    headers = {
        k: v
        for k, v in request.headers.items()
        if k.lower() not in ("authorization", "x-amz-date", "x-amz-security-token")
    }
    aws = AWSRequest(method=request.method, url=request.url, headers=headers, data=request.body)
    SigV4Auth(Credentials(KEY_ID, SECRET, token), "bedrock", "eu-west-3").add_auth(aws)
    return str(aws.headers["Authorization"])


def documented_signature(request: UpstreamRequest, region: str, service: str) -> str:
    """The signature by the steps of AWS's SigV4 documentation, with hashlib and hmac only."""
    parts = urlsplit(request.url)
    headers = {k.lower(): " ".join(v.split()) for k, v in request.headers.items()}
    headers.pop("authorization", None)
    headers["host"] = parts.netloc
    names = sorted(headers)
    # Non-S3 services encode the (already encoded) path once more.
    canonical = "\n".join(
        [
            request.method,
            quote(parts.path or "/", safe="/~"),
            parts.query,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    stamp = headers["x-amz-date"]
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + SECRET).encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("stream", [False, True])
def test_signature_matches_botocore_for_a_fixed_clock(stream: bool) -> None:
    request = bedrock_request(stream)
    AwsSigV4(KEY_ID, SECRET, None, "eu-west-3").sign(request)
    assert request.headers["x-amz-date"] == "20240517T093015Z"
    assert request.headers["authorization"] == botocore_authorization(request)
    expected = documented_signature(request, "eu-west-3", "bedrock")
    assert request.headers["authorization"].endswith(f"Signature={expected}")
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20240517/eu-west-3/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date;x-team, Signature="
    )


def test_session_token_is_sent_and_signed() -> None:
    request = bedrock_request()
    AwsSigV4(KEY_ID, SECRET, "session-token-1", "eu-west-3").sign(request)
    assert request.headers["x-amz-security-token"] == "session-token-1"
    assert "x-amz-security-token" in request.headers["authorization"]
    assert request.headers["authorization"] == botocore_authorization(request, "session-token-1")


def test_the_signed_url_is_the_one_the_http_client_sends() -> None:
    """aiohttp (yarl) unescapes ':' in a path; the signer signs that form, and keeps '%2F'."""
    request = bedrock_request()
    arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.amazon.nova-pro-v1:0"
    arn_request = BedrockAdapter().build(
        "chat", {"messages": [{"role": "user", "content": "x"}]}, b"", arn, BASE
    )
    arn_request.params["trace"] = "a b"
    signer = AwsSigV4(KEY_ID, SECRET, None, "eu-west-3")
    for req in (request, arn_request):
        signer.sign(req)
        assert str(URL(req.url)) == req.url  # what the client builds from it is the same URL
        assert req.params == {}
        assert req.headers["authorization"] == botocore_authorization(req)
    assert URL(request.url).raw_path == f"/model/{MODEL}/converse"
    assert "inference-profile%2Feu.amazon" in URL(arn_request.url).raw_path
    assert URL(arn_request.url).query == {"trace": "a b"}


def test_aws_published_test_vector_get_vanilla(monkeypatch: pytest.MonkeyPatch) -> None:
    # From AWS's SigV4 test suite ("get-vanilla"): 2015-08-30T12:36:00Z, service "service".
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime",
        lambda *a, **k: datetime.datetime(2015, 8, 30, 12, 36, 0),
    )
    request = UpstreamRequest("GET", "https://example.amazonaws.com/", {}, b"")
    AwsSigV4(KEY_ID, SECRET, None, "us-east-1", service="service").sign(request)
    assert request.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_build_signer_makes_a_sigv4_signer_that_hides_secrets() -> None:
    creds = ConfigCredentials(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, aws_region="eu-west-3"
    )
    service = Service(name="b", provider="bedrock", credentials=creds)
    warnings: list[str] = []
    signer = build_signer(creds, service, "services[0].credentials", warnings)
    assert isinstance(signer, AwsSigV4)
    assert not signer.needs_prepare
    assert warnings == []
    assert signer.region == "eu-west-3"
    assert SECRET not in repr(signer) and KEY_ID not in repr(signer)
