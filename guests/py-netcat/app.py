"""py-netcat: tries the network from Python; airlock must refuse every attempt.

A test guest for the network wall (tests/integration/no_network.rs): CPython's
own socket module and urllib, unmodified, against the host's refusing
wasi:sockets and wasi:http stubs. Built by `cargo xtask build-guests` with
componentize-py (see xtask/src/polyglot.rs) into
target/wasm32-wasip2/release/py_netcat.wasm; not a member of the Rust guests
workspace.
"""
import encodings.idna  # noqa: F401 - name lookups encode the host with it
import socket
import urllib.request

import wit_world


def _split(target):
    host, port = target.rsplit(":", 1)
    return host, int(port)


class WitWorld(wit_world.WitWorld):
    def attempt(self, kind: str, target: str) -> str:
        try:
            if kind == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(_split(target))
                s.sendall(b"hello from the sandbox\n")
                return "REACHED: tcp connected"
            if kind == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b"hello from the sandbox\n", _split(target))
                return "REACHED: udp sent"
            if kind == "dns":
                return "REACHED: " + repr(socket.getaddrinfo(target, 80))
            if kind == "http":
                with urllib.request.urlopen(target, timeout=2) as r:
                    return "REACHED: http " + str(r.status)
            return "unknown kind " + kind
        except BaseException as e:  # noqa: BLE001 - the error is the answer
            return "refused: %s: %s" % (type(e).__name__, e)
