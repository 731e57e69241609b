"""Names a client chooses (a model, a deployment) placed in a provider's URL path.

Gemini, Vertex AI, Bedrock and Azure's deployments put the model in the path,
and the gateway's credentials go with the request. Unchecked, a model such as
``gemini-x/../../../other/endpoint`` would send the key to another endpoint of
the provider's API (the HTTP client resolves the dot segments), and ``?`` or
``#`` would cut the path short. So every part of a name that goes into a path
passes ``segment``: path syntax is refused with a 400 naming the model, the rest
is escaped. Adapters whose names have parts (``models/x``, an ARN) split them
themselves, on the shapes their provider documents, and check each part here.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from sluicegate.errors import InvalidRequest

# A separator or a dot segment, a query or a fragment, an escape the provider would
# decode into one of those, a backslash (some servers read it as '/'), control characters.
_PATH_SYNTAX = re.compile(r"[/?#%\\\x00-\x1f\x7f]|\.\.")
_SAFE = "@-._~"  # unreserved characters and the "@" of Vertex versions, left as they are
SYNTAX = "'/', '..', '?', '#', '%', '\\' or a control character"


def refuse(model: str, provider: str, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"The model '{model}' cannot be sent to provider '{provider}': {why}.",
        param="model",
        code="invalid_model",
    )


def segment(part: str, model: str, provider: str, forbidden: str = "") -> str:
    """``part`` of ``model`` as one escaped path segment; a 400 when it is empty or holds
    path syntax, or one of ``forbidden`` (characters the provider's URLs give a meaning)."""
    if not part or part == "." or _PATH_SYNTAX.search(part) or not set(forbidden).isdisjoint(part):
        extra = "".join(f", '{char}'" for char in forbidden)
        raise refuse(model, provider, f"a name may not be empty or hold {SYNTAX}{extra}")
    return quote(part, safe=_SAFE)
