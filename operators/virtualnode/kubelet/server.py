"""The kubelet HTTPS API that the tenant apiserver proxies to (`kubectl logs`, `exec`,
`attach`, `port-forward`), served from the provider's streaming side only.

Mutual TLS against the tenant CA; only the apiserver's kubelet client identity (or
another system:masters certificate) is let in, as a kubelet would authorize
nodes/proxy and nodes/log for the apiserver only.
"""
from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from . import portforward, remotecommand, stdio_stream
from .logquery import LogQueryError, log_options
from ..mapping.spec import pod_uid_of

if TYPE_CHECKING:
    from ...providers.streaming import SandboxStreams

log = logging.getLogger(__name__)

ALLOWED_CN = "kube-apiserver-kubelet-client"
ALLOWED_ORG = "system:masters"
NOT_YET = ("run",)

Lookup = Callable[[str, str], "tuple[dict | None, dict | None]"]


def server_ssl_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _identity(request: web.Request) -> tuple[str, list[str]]:
    sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
    cert = sslobj.getpeercert() if sslobj else None
    cn, orgs = "", []
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return cn, orgs


class KubeletServer:
    def __init__(self, *, lookup: Lookup, streams: Callable[[], "SandboxStreams"], meta_namespace: str):
        self.lookup = lookup
        self.streams = streams  # the provider's streaming side, made on first use
        self.meta_namespace = meta_namespace
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for verb, handler in (("exec", self.exec_), ("attach", self.attach)):
            for path in (f"/{verb}/{{namespace}}/{{pod}}/{{container}}", f"/{verb}/{{namespace}}/{{pod}}/{{uid}}/{{container}}"):
                app.router.add_route("GET", path, handler)
                app.router.add_route("POST", path, handler)
        for path in ("/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"):
            app.router.add_route("GET", path, self.port_forward)
            app.router.add_route("POST", path, self.port_forward)
        for verb in NOT_YET:
            app.router.add_route("*", f"/{verb}/{{tail:.*}}", self.not_implemented)
        return app

    @web.middleware
    async def _authorize(self, request: web.Request, handler):
        if request.path == "/healthz":
            return await handler(request)
        cn, orgs = _identity(request)
        if cn != ALLOWED_CN and ALLOWED_ORG not in orgs:
            log.warning("refused %s %s for %r %s", request.method, request.path, cn, orgs)
            raise web.HTTPForbidden(text=f"user {cn!r} may not use the kubelet API\n")
        return await handler(request)

    async def start(self, address: str, port: int, ctx: ssl.SSLContext) -> None:
        # Cancelling the handler when the client goes away ends `kubectl logs -f` streams
        # (and their podman processes) even while the container prints nothing.
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, address, port, ssl_context=ctx).start()
        log.info("kubelet API on https://%s:%d", address, port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def not_implemented(self, request: web.Request) -> web.Response:
        verb = request.path.strip("/").split("/")[0]
        return web.Response(status=501, text=f"{verb} is not supported by the sk8s virtual node yet\n")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        pod, sbp = self.lookup(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f'pod "{name}" in namespace "{ns}" is not on this node\n')
        pod_spec = pod.get("spec") or {}
        spec_containers = [c["name"] for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or [])
                           + (pod_spec.get("ephemeralContainers") or [])]
        if container not in spec_containers:
            raise web.HTTPNotFound(text=f'container "{container}" not found in pod "{name}"; '
                                        f'choose one of: [{" ".join(spec_containers)}]\n')
        try:
            opts = log_options(request.query)
        except LogQueryError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n")
        pod_status = pod.get("status") or {}
        status = next((c for c in (pod_status.get("containerStatuses") or []) +
                       (pod_status.get("initContainerStatuses") or []) +
                       (pod_status.get("ephemeralContainerStatuses") or []) if c.get("name") == container), {})
        if opts.previous and not status.get("restartCount"):
            raise web.HTTPBadRequest(text=f'previous terminated container "{container}" in pod "{name}" not found\n')
        waiting = (status.get("state") or {}).get("waiting")
        if sbp is None or pod_uid_of(sbp) != pod["metadata"]["uid"] or (
                waiting and not status.get("containerID")):
            reason = (waiting or {}).get("reason") or "ContainerCreating"
            raise web.HTTPBadRequest(text=f'container "{container}" in pod "{name}" is waiting to start: {reason}\n')

        from ...providers.sandbox import SandboxRef
        try:
            streams = self.streams()
        except ValueError as exc:
            raise web.HTTPServiceUnavailable(text=f"container logs are not available: {exc}\n")
        ref = SandboxRef(self.meta_namespace, sbp["metadata"]["name"], sbp["metadata"]["uid"])
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        stream = streams.logs(ref, container, opts)  # honours every option, limitBytes included
        try:
            async for chunk in stream:
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        finally:
            await stream.aclose()  # stops the provider's log process, also when cancelled
        return resp

    async def exec_(self, request: web.Request) -> web.StreamResponse:
        return await self._stdio(request, exec_=True)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        return await self._stdio(request, exec_=False)

    async def _stdio(self, request: web.Request, *, exec_: bool) -> web.StreamResponse:
        """`kubectl exec` and `kubectl attach`, over a WebSocket or SPDY."""
        ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            opts = remotecommand.parse_options(request.query, request.query.getall("command", []), exec_=exec_)
        except remotecommand.OptionsError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n")
        streams, ref = self._running(request, ns, name, container)
        if exec_:
            def open_session():
                return streams.open_exec_session(ref, container, list(opts.command), stdin=opts.stdin, tty=opts.tty)
        else:
            def open_session():
                return streams.open_attach_session(ref, container, stdin=opts.stdin, tty=opts.tty)
        return await stdio_stream.serve(request, opts, open_session, exec_=exec_)

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """`kubectl port-forward`: SPDY, tunnelled in the WebSocket the apiserver passes on or not."""
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        streams, ref = self._running(request, ns, name, None)
        return await portforward.serve(request, lambda port: streams.open_port_stream(ref, port), name)

    def _running(self, request: web.Request, ns: str, name: str, container: str | None):
        """The provider's streams and the sandbox of a pod whose `container` (any, if None) is running."""
        pod, sbp = self.lookup(ns, name)
        uid = request.match_info.get("uid")
        if pod is None or (uid and uid != pod["metadata"]["uid"]):
            raise web.HTTPNotFound(text="pod does not exist\n")
        # A new list: the informer's cached pod must not change. Ephemeral containers
        # (`kubectl debug -it` attaches to one) are containers of the pod here too.
        pod_status = pod.get("status") or {}
        statuses = [c for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
                    for c in pod_status.get(key) or []]
        running = [c for c in statuses if "running" in (c.get("state") or {})
                   and container in (None, c.get("name"))]
        if sbp is None or pod_uid_of(sbp) != pod["metadata"]["uid"] or not running:
            # The kubelet's words when the runtime has no running container (sandbox) by that name.
            raise web.HTTPNotFound(text=f'container not found ("{container}")\n' if container
                                   else f'pod "{name}" has no running sandbox\n')
        from ...providers.sandbox import SandboxRef
        try:
            streams = self.streams()
        except ValueError as exc:
            raise web.HTTPServiceUnavailable(text=f"{request.path.split('/')[1]} is not available: {exc}\n")
        return streams, SandboxRef(self.meta_namespace, sbp["metadata"]["name"], sbp["metadata"]["uid"])
