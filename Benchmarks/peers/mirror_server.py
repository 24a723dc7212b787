#!/usr/bin/env python3
"""A local HTTP mirror with fault injection, for hrtem's mirror tests and benchmark.

Serves the files under --root on 127.0.0.1 at a free port and prints "PORT <n>" on its first
line. GET and HEAD, byte ranges ("bytes=N-" and "bytes=N-M"), one JSON line per request in
--log: {"path", "range", "status", "sent", "proxied", "agent", "authorization"} (sent = body bytes written; proxied: the
request came in absolute form, i.e. the client used this server as its HTTP proxy). That line is
written once the reply has gone out, so a client may see its reply before the line exists; each
request therefore first logs {"begun": SEQ}, before any byte of its reply, its line carries the
same "seq", and a reader of the log waits until every begun request has its line and orders the
lines by "seq" (the order requests arrived, not the order they were answered).

--faults FILE is a JSON object: relative path (decoded, no leading "/") -> list of faults, each
used for "times" requests (default: every request) in order:
  {"kind": "status", "code": 500}                  reply with that status and a short body
  {"kind": "status", "code": 429, "retry_after": "1"}
  {"kind": "drop", "after": N}                     send N body bytes, wait until the client's TCP
                                                   has acknowledged them, then reset the connection
  {"kind": "trickle", "after": N, "bytes_per_second": R}  N bytes at once, then R bytes/s
  {"kind": "no_range"}                             ignore Range: always 200 with the whole file
  {"kind": "corrupt"}                              flip the first byte of the body
Any fault may carry "also_no_range": true.

--bearer TOKEN makes every request need "Authorization: Bearer TOKEN" (an API key, as Labelbox
asks for its mask URLs): without it, or with another token, the reply is 401.

The server stops by itself after --lifetime seconds, or as soon as its parent process is gone,
so a killed test never leaves it running.
"""
import argparse
import fcntl
import json
import os
import socket
import struct
import sys
import termios
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, root, faults, log_path, bearer=None):
        self.root = os.path.realpath(root)
        self.faults = faults
        self.bearer = bearer
        self.begun = 0
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def next_fault(self, path):
        with self.lock:
            queue = self.faults.get(path)
            if not queue:
                return None
            fault = queue[0]
            if "times" in fault:
                fault["times"] -= 1
                if fault["times"] <= 0:
                    queue.pop(0)
            return dict(fault)

    def begin(self):
        with self.lock:
            self.begun += 1
            if self.log:
                self.log.write(json.dumps({"begun": self.begun}) + "\n")
            return self.begun

    def record(self, entry):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hrtem-test-mirror/1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        self.serve(head=False)

    def reply_status(self, code, path, rng, retry_after=None):
        body = f"{code} for {path}\n".encode()
        self.send_response(code)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.record({"path": path, "range": rng, "status": code, "sent": 0,
                      "authorization": self.headers.get("Authorization")})

    def record(self, entry):
        entry["seq"] = self.seq
        state.record(entry)

    def serve(self, head):
        self.seq = state.begin()
        raw = self.path.split("?", 1)[0]
        if raw.startswith("http://"):
            # Absolute form: the client took this server for its proxy (http_proxy).
            raw = "/" + raw[len("http://"):].partition("/")[2]
        path = urllib.parse.unquote(raw).lstrip("/")
        rng = self.headers.get("Range")
        if state.bearer is not None and self.headers.get("Authorization") != f"Bearer {state.bearer}":
            self.reply_status(401, path, rng)
            return
        local = os.path.realpath(os.path.join(state.root, path))
        if not local.startswith(state.root + os.sep) or not os.path.isfile(local):
            self.reply_status(404, path, rng)
            return
        fault = state.next_fault(path) or {}
        kind = fault.get("kind")
        if kind == "status":
            self.reply_status(int(fault["code"]), path, rng, fault.get("retry_after"))
            return
        size = os.path.getsize(local)
        start, end = 0, size - 1
        status = 200
        if rng and kind != "no_range" and not fault.get("also_no_range"):
            spec = rng.strip()
            if spec.startswith("bytes=") and "," not in spec:
                first, _, last = spec[6:].partition("-")
                if first.isdigit():
                    start = int(first)
                    if last.isdigit():
                        end = min(int(last), size - 1)
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        self.record({"path": path, "range": rng, "status": 416, "sent": 0})
                        return
                    status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if kind != "no_range":
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        sent = 0
        if not head:
            try:
                sent = self.send_body(local, start, length, fault)
            except (BrokenPipeError, ConnectionResetError):
                sent = -1
        self.record({"path": path, "range": rng, "status": status, "sent": sent,
                      "fault": kind, "proxied": self.path.startswith("http://"),
                      "agent": self.headers.get("User-Agent"),
                      "authorization": self.headers.get("Authorization")})
        if kind == "drop":
            # A reset discards whatever is still in this side's send queue. A client that has
            # not been reading (descheduled, a small receive window) would then get fewer than
            # N bytes, so first wait until its TCP has acknowledged every byte: they are in its
            # receive queue, which it reads in full before it sees the reset.
            wait_until_acknowledged(self.connection)
            # Reset, not a clean close: the client sees the transfer cut mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

    def send_body(self, local, start, length, fault):
        kind = fault.get("kind")
        with open(local, "rb") as f:
            if kind in (None, "no_range") and not fault:
                self.wfile.flush()
                return self.connection.sendfile(f, start, length)
            f.seek(start)
            limit = length
            if kind == "drop":
                limit = min(length, int(fault.get("after", 0)))
            sent = 0
            rate = float(fault.get("bytes_per_second", 0)) if kind == "trickle" else 0
            burst = int(fault.get("after", 0)) if kind == "trickle" else limit
            corrupt = kind == "corrupt"
            while sent < limit:
                if rate > 0 and sent >= burst:
                    piece = max(1, int(rate / 10))
                    time.sleep(0.1)
                else:
                    piece = 1 << 16
                    if rate > 0:
                        piece = min(piece, burst - sent) or 1
                chunk = f.read(min(piece, limit - sent))
                if not chunk:
                    break
                if corrupt and sent == 0:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
            return sent


def wait_until_acknowledged(sock, timeout=30.0):
    """Waits until the peer has acknowledged every byte written to `sock` (the kernel's send
    queue, unsent plus unacknowledged bytes, is empty); False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0)))[0]
        except (AttributeError, OSError):
            return False  # no SIOCOUTQ on this system: nothing to wait on
        if queued == 0:
            return True
        time.sleep(0.002)
    return False


def watchdog(lifetime, parent):
    deadline = time.time() + lifetime
    while time.time() < deadline:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.2)
    os._exit(0)


def main():
    global state
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--faults")
    parser.add_argument("--log")
    parser.add_argument("--lifetime", type=float, default=120)
    parser.add_argument("--bearer")
    args = parser.parse_args()
    faults = {}
    if args.faults:
        with open(args.faults) as f:
            faults = json.load(f)
    state = State(args.root, faults, args.log, args.bearer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=watchdog, args=(args.lifetime, os.getppid()), daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
