"""Files and batches: OpenAI's and Azure's ``/v1/files`` and ``/v1/batches``, Anthropic's
``/v1/messages/batches`` (docs/endpoints.md)."""
