"""The request path: handler, upstream client and stream relay."""
