"""TLS on both sides of the gateway.

``server``: the listener's SSL context (``gateway.tls``), reloaded when its files change;
``protocol``: the HTTP protocol that puts a verified client certificate into the ASGI
scope; ``identity``: what the data plane reads of that certificate; ``client``: the SSL
context of an upstream service or pool (``tls_*`` fields), built when config compiles.
"""
