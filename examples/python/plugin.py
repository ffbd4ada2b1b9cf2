#!/usr/bin/env python3
"""Example microgateway plugin in Python (grpcio).

Adds the headers from its config (default ``x-python-plugin: hello``) to every request
in the stage it is attached to. Run by the gateway as ``file:///abs/path/plugin.py``:
it speaks the go-plugin handshake (magic cookie, unix socket in
``PLUGIN_UNIX_SOCKET_DIR``, one line on stdout), serves ``grpc.health.v1`` for service
"plugin", ``plugin.GRPCController/Shutdown`` and the plugin contract.

Needs: ``pip install grpcio grpcio-tools grpcio-health-checking``. The stubs are
generated from ``proto/`` at start-up into a temporary directory.
"""
import json
import os
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_tools import protoc

COOKIE_KEY = "MICROGATEWAY_PLUGIN"
COOKIE_VALUE = "7f3e2d1c-microgateway-plugin-v1"
HERE = os.path.dirname(os.path.realpath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def generate_stubs():
    out = tempfile.mkdtemp(prefix="mg-python-plugin-")
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    for include, proto in [
        (PROTO_ROOT, "microgateway/plugin/v1/plugin.proto"),
        (os.path.join(PROTO_ROOT, "go-plugin"), "grpc_controller.proto"),
    ]:
        rc = protoc.main(["protoc", f"-I{include}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(include, proto)])
        if rc != 0:
            sys.exit(f"cannot compile {proto}")
    sys.path.insert(0, out)


def main():
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.exit("this is a microgateway plugin: configure it as file:///path/to/plugin.py")
    if "1" not in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(","):
        sys.exit("the gateway does not offer plugin protocol version 1")
    generate_stubs()
    from microgateway.plugin.v1 import plugin_pb2 as pb, plugin_pb2_grpc as pb_grpc
    import grpc_controller_pb2 as ctl, grpc_controller_pb2_grpc as ctl_grpc

    stop = threading.Event()

    class Plugin(pb_grpc.PluginServicer):
        headers = {"x-python-plugin": "hello"}

        def GetManifest(self, request, context):
            return pb.Manifest(name="python-example", version="1.0.0",
                               hooks=[pb.HOOK_PRE_AUTH, pb.HOOK_POST_AUTH])

        def Initialize(self, request, context):
            try:
                config = json.loads(request.config_json or "{}")
                if "headers" in config:
                    Plugin.headers = {str(k): str(v) for k, v in config["headers"].items()}
                return pb.InitializeResponse(ok=True)
            except (ValueError, AttributeError) as e:
                return pb.InitializeResponse(ok=False, error=str(e))

        def _enrich(self, request, context):
            set_headers = [pb.Header(name=k, value=v.encode()) for k, v in Plugin.headers.items()]
            return pb.HookResponse(continue_request=pb.Continue(headers=pb.HeaderMutations(set=set_headers)))

        PreAuth = _enrich
        PostAuth = _enrich

        def Ping(self, request, context):
            return pb.PingResponse(nonce=request.nonce)

    class Controller(ctl_grpc.GRPCControllerServicer):
        def Shutdown(self, request, context):
            stop.set()
            return ctl.Empty()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_PluginServicer_to_server(Plugin(), server)
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
