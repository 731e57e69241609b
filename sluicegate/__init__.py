"""sluicegate: one OpenAI- and Anthropic-compatible endpoint in front of every LLM provider."""

__version__ = "0.1.0"
