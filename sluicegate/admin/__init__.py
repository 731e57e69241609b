"""The Admin API (``/admin``): guarded by ``gateway.admin_key``; absent without one."""
