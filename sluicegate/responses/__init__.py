"""The Responses API's endpoints (``/v1/responses…``) and the responses the gateway keeps."""
