#!/usr/bin/env python3
"""A Tyk AI Studio microgateway plugin in Python (grpcio), hosted by microgateway unchanged.

It serves Tyk's contract, ``plugin.PluginService`` (``proto/tyk/plugin.proto``, wire
compatible with Tyk's ``proto/plugin.proto``), two ways:

- as ``file:///abs/path/tyk_plugin.py``: the go-plugin handshake with Tyk's cookie
  ``AI_STUDIO_PLUGIN=v1`` (unix socket in ``PLUGIN_UNIX_SOCKET_DIR``, one line on
  stdout), plus ``grpc.health.v1`` for service "plugin" and
  ``plugin.GRPCController/Shutdown``, as any go-plugin server does;
- as ``tyk_plugin.py --listen HOST:PORT``: a plain gRPC server registering only
  ``PluginService``, like Tyk's standalone examples (``grpc://HOST:PORT``).

Hooks: ``ProcessPreAuth`` blocks requests carrying ``X-Block`` (status
``block_status``, default 418) and otherwise adds ``X-Tyk-Python`` (config
``greeting``) and the context update ``py_seen=yes``; ``ProcessPostAuth`` copies
``py_seen`` from the context metadata into ``X-Py-Seen``; ``HandleProxyLog`` appends a
JSON line to ``log_file``.

Needs: ``pip install grpcio grpcio-tools grpcio-health-checking``. The stubs are
generated from ``proto/`` at start-up into a temporary directory.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.realpath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def generate_stubs():
    out = tempfile.mkdtemp(prefix="mg-tyk-python-plugin-")
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for include, proto in [
        (os.path.join(PROTO_ROOT, "tyk"), "plugin.proto"),
        (os.path.join(PROTO_ROOT, "go-plugin"), "grpc_controller.proto"),
    ]:
        rc = protoc.main(["protoc", f"-I{include}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(include, proto)])
        if rc != 0:
            sys.exit(f"cannot compile {proto}")
    sys.path.insert(0, out)


def make_servicer(pb, pb_grpc):
    class Plugin(pb_grpc.PluginServiceServicer):
        config = {}
        lock = threading.Lock()

        def Initialize(self, request, context):
            Plugin.config = dict(request.config)
            return pb.InitResponse(success=True)

        def Ping(self, request, context):
            return pb.PingResponse(timestamp=request.timestamp, healthy=True)

        def Shutdown(self, request, context):
            return pb.ShutdownResponse(success=True)

        def ProcessPreAuth(self, request, context):
            if "X-Block" in request.headers:
                return pb.PluginResponse(
                    block=True,
                    status_code=int(Plugin.config.get("block_status", "418")),
                    headers={"X-Blocked-By": "tyk-python"},
                    body=b'{"error":"blocked by python"}')
            return pb.PluginResponse(
                modified=True,
                headers={"X-Tyk-Python": Plugin.config.get("greeting", "hello")},
                context_updates={"py_seen": "yes"})

        def ProcessPostAuth(self, request, context):
            seen = request.request.context.metadata.get("py_seen", "no")
            return pb.PluginResponse(modified=True, headers={"X-Py-Seen": seen})

        def HandleProxyLog(self, request, context):
            path = Plugin.config.get("log_file")
            if path:
                line = json.dumps({"kind": "proxy_log", "request_id": request.request_id,
                                   "status": request.response_code})
                with Plugin.lock, open(path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            return pb.DataCollectionResponse(success=True, handled=True)

    return Plugin()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", help="serve plain gRPC (PluginService only) on HOST:PORT")
    args = parser.parse_args()
    if not args.listen and os.environ.get("AI_STUDIO_PLUGIN") != "v1":
        sys.exit("this is a Tyk AI Studio plugin: run it from the gateway or with --listen")
    generate_stubs()
    import plugin_pb2 as pb
    import plugin_pb2_grpc as pb_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_PluginServiceServicer_to_server(make_servicer(pb, pb_grpc), server)
    if args.listen:
        port = server.add_insecure_port(args.listen)
        host = args.listen.rsplit(":", 1)[0]
        server.start()
        print(f"listening on grpc://{host}:{port}", file=sys.stderr, flush=True)
        server.wait_for_termination()
        return

    if "1" not in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "1").split(","):
        sys.exit("the host does not offer plugin protocol version 1")
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    import grpc_controller_pb2 as ctl
    import grpc_controller_pb2_grpc as ctl_grpc

    stop = threading.Event()

    class Controller(ctl_grpc.GRPCControllerServicer):
        def Shutdown(self, request, context):
            stop.set()
            return ctl.Empty()

    ctl_grpc.add_GRPCControllerServicer_to_server(Controller(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    socket = os.path.join(os.environ["PLUGIN_UNIX_SOCKET_DIR"], f"plugin-{os.getpid()}.sock")
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    print(f"1|1|unix|{socket}|grpc", flush=True)
    stop.wait()
    server.stop(grace=1)


if __name__ == "__main__":
    main()
