"""Realtime: ``/v1/realtime`` WebSocket sessions relayed to OpenAI's and Azure's Realtime APIs."""
