"""`python -m operators.virtualnode ...`: parse, load credentials, run until SIGTERM."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time

from . import options

ARGS_FROM = "--args-from="
CLAIM_SECRET = "--claim-secret="


def await_arguments(path: str, claim_secret: str | None = None) -> list[str]:
    """A standby virtual node: pay the imports now, learn which cluster it serves later.

    The ServerlessCluster operator starts one with every warm control plane and writes
    the real arguments (a JSON list) into `path` when a cluster claims that plane, so a
    new cluster does not wait for a Python interpreter to start.
    """
    from . import app  # noqa: F401  (warm the import cache)
    from ..kubeclient import client  # noqa: F401
    from .kubelet import server  # noqa: F401
    from .. import providers  # noqa: F401
    if claim_secret:
        from pathlib import Path
        from .claim import await_claim
        await_claim(claim_secret, Path(path))
    while not os.path.exists(path):
        if not os.path.exists(os.path.dirname(path)):
            sys.exit(0)  # the plane was removed while we waited
        time.sleep(0.02)
    with open(path) as f:
        return json.load(f)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith(ARGS_FROM) and len(argv) <= 2:
        claim = argv[1][len(CLAIM_SECRET):] if len(argv) == 2 and argv[1].startswith(CLAIM_SECRET) else None
        if len(argv) == 1 or claim:
            argv = await_arguments(argv[0][len(ARGS_FROM):], claim)
    opts = options.parse(argv)
    logging.basicConfig(level=opts.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Killing a log process that has just exited makes Popen reap it first, and asyncio's
    # child watcher then warns "Unknown child process": benign, and frequent with `logs`.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    log = logging.getLogger("operators.virtualnode")

    from .app import VirtualNode
    from ..kubeclient.client import KubeClient, KubeconfigError
    from .kubelet.server import server_ssl_context
    try:
        tenant = KubeClient.from_kubeconfig(opts.tenant_kubeconfig, "tenant")
        meta = KubeClient.from_kubeconfig(opts.meta_kubeconfig, "meta")
    except KubeconfigError as exc:
        print(f"virtual node: bad kubeconfig: {exc}", file=sys.stderr)
        return 2
    try:
        ctx = server_ssl_context(opts.tls_cert, opts.tls_key, opts.client_ca)
    except (ssl.SSLError, OSError) as exc:
        print(f"virtual node: cannot load --tls-cert/--tls-key/--client-ca: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        node = asyncio.create_task(VirtualNode(opts, tenant, meta, ctx).run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({node, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if node.done():
            stopping.cancel()
            try:
                node.result()
            except OSError as exc:  # e.g. the kubelet port is taken
                log.error("virtual node failed: %s", exc)
                return 1
            except Exception:
                log.exception("virtual node failed")
                return 1
            return 1
        log.info("SIGTERM: stopping (SandboxPods keep running; a restart picks them up)")
        node.cancel()
        await asyncio.gather(node, return_exceptions=True)
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
