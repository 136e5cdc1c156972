"""A local Alibaba Cloud OpenAPI emulator: RPC-style requests signed as the cloud's
(signature v1), answered with the cloud's response shapes and error codes.

`server.py` serves the products (a module per product, dispatched by Version and Action),
`signature.py` checks requests, `params.py` reads the flat parameters, `faults.py` injects
throttling, server errors, latency and dropped connections; `eci.py` is Elastic Container
Instance, whose container groups run on a `backends.GroupBackend`."""
