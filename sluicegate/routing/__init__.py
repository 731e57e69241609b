"""Routing: the compiled table, weighted plans and balancing."""
