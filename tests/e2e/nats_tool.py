#!/usr/bin/env python3
"""A small NATS client for the end-to-end tests: the NATS text protocol over one socket, standard
library only (runs under any Python 3), so tests can look at JetStream streams without a NATS
client package.

    nats_tool.py stream-info URL STREAM          JSON reply of $JS.API.STREAM.INFO.<STREAM>
    nats_tool.py get-msg URL STREAM SEQ [--out FILE]
        message SEQ of STREAM via $JS.API.STREAM.MSG.GET.<STREAM>, printed as JSON
        {"seq", "subject", "headers", "data"}: headers decoded from the reply's base64 "hdrs"
        into {name: value} (a repeated name's values joined with ", "), data as base64; with
        --out the raw payload goes to FILE and "data" is left out.
    nats_tool.py create-stream URL STREAM SUBJECT [--max-msgs N] [--duplicate-window SECONDS]
        a stream with marmot's settings but the given duplicate window
    nats_tool.py publish URL SUBJECT FILE [--header NAME=VALUE]...
        a JetStream publish of FILE's bytes; prints the ack {"stream", "seq"}
    nats_tool.py get-all URL STREAM [--dir DIR]
        every message the stream holds, one JSON object (as get-msg) per line, in sequence order;
        with --dir each payload goes to DIR/<seq>.bin instead of "data".

URL: nats://[user:password@]host[:port] (several comma-separated: the first that answers).
Exit status 1 with a message on stderr when the server or the JetStream API reports an error.
Also importable: NatsConnection, create_stream(), publish(), stream_info(), get_msg(), all_msgs().
"""
import argparse
import base64
import json
import os
import secrets
import socket
import sys
import urllib.parse


class NatsError(Exception):
    pass


class NatsConnection:
    """One connection: CONNECT, PING/PONG, SUB, PUB with a reply inbox, MSG and HMSG."""

    def __init__(self, urls, timeout=10.0):
        last = None
        for url in urls.split(","):
            try:
                self._connect(url.strip(), timeout)
                return
            except (OSError, NatsError) as e:
                last = e
        raise NatsError(f"cannot connect to {urls}: {last}")

    def _connect(self, url, timeout):
        u = urllib.parse.urlsplit(url if "://" in url else "nats://" + url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=timeout)
        self.buf = b""
        self.sid = 0
        line = self._line()
        if not line.startswith(b"INFO "):
            raise NatsError(f"expected INFO from the server, got {line!r}")
        self.info = json.loads(line[5:])
        opts = {"verbose": False, "pedantic": False, "lang": "python-e2e", "version": "1",
                "protocol": 1, "headers": True, "no_responders": True}
        if u.username is not None:
            opts["user"] = urllib.parse.unquote(u.username)
            opts["pass"] = urllib.parse.unquote(u.password or "")
        self._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        while True:  # the server answers PONG, or -ERR (e.g. authorization violation)
            kind, _ = self._read_op()
            if kind == "PONG":
                return

    def close(self):
        self.sock.close()

    def _send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed by the server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, rest = self.buf[:n], self.buf[n:]
        if rest[:2] != b"\r\n":
            raise NatsError("message payload not followed by CRLF")
        self.buf = rest[2:]
        return data

    def _read_op(self):
        """The next protocol operation: ("MSG", (subject, sid, reply, headers_bytes, payload)),
        ("PONG", None) or ("OK", None). Answers the server's PINGs, raises on -ERR."""
        while True:
            line = self._line()
            op = line.split(b" ", 1)[0].upper()
            if op == b"PING":
                self._send(b"PONG\r\n")
            elif op == b"PONG":
                return "PONG", None
            elif op == b"+OK":
                return "OK", None
            elif op == b"INFO":
                continue
            elif op == b"-ERR":
                raise NatsError("server error: " + line[5:].decode(errors="replace"))
            elif op == b"MSG":  # MSG <subject> <sid> [reply-to] <#bytes>
                parts = line.decode().split()
                subject, sid = parts[1], parts[2]
                reply = parts[3] if len(parts) == 5 else None
                payload = self._exact(int(parts[-1]))
                return "MSG", (subject, sid, reply, b"", payload)
            elif op == b"HMSG":  # HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
                parts = line.decode().split()
                subject, sid = parts[1], parts[2]
                reply = parts[3] if len(parts) == 6 else None
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._exact(total)
                return "MSG", (subject, sid, reply, data[:hlen], data[hlen:])
            else:
                raise NatsError(f"unexpected protocol line {line!r}")

    def request(self, subject, payload=b"", headers=None):
        """Publishes payload (with headers, a {name: value} dict, when given) to subject with a
        fresh reply inbox and returns (headers, payload) of the first reply."""
        self.sid += 1
        sid = str(self.sid)
        inbox = "_INBOX." + secrets.token_hex(12)
        if headers:
            hdr = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
            pub = f"HPUB {subject} {inbox} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode() + hdr
        else:
            pub = f"PUB {subject} {inbox} {len(payload)}\r\n".encode()
        self._send(f"SUB {inbox} {sid}\r\nUNSUB {sid} 1\r\n".encode() + pub + payload + b"\r\n")
        while True:
            kind, msg = self._read_op()
            if kind == "MSG" and msg[1] == sid:
                headers = parse_headers(msg[3])
                if headers.get(":status") == "503":
                    raise NatsError(f"no responders for {subject} (is JetStream enabled?)")
                return headers, msg[4]


def parse_headers(raw):
    """NATS headers ("NATS/1.0[ status [description]]\\r\\nName: value\\r\\n...") into a dict;
    the status line's code, if any, under ":status"."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not raw:
        return {}
    lines = raw.decode("utf-8", errors="replace").split("\r\n")
    if not lines[0].startswith("NATS/"):
        raise NatsError(f"bad header block {raw!r}")
    headers = {}
    status = lines[0].split(" ", 2)
    if len(status) > 1 and status[1]:
        headers[":status"] = status[1]
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    return headers


def _api(conn, subject, request):
    _, payload = conn.request(subject, json.dumps(request).encode() if request is not None else b"")
    reply = json.loads(payload)
    if "error" in reply:
        raise NatsError(f"{subject}: {reply['error']}")
    return reply


def create_stream(conn, name, subject, max_msgs=1024, duplicate_window_s=120.0):
    """A stream with marmot's settings (src/stream/streams.cpp), except the duplicate window."""
    config = {"name": name, "subjects": [subject], "storage": "file", "retention": "limits",
              "discard": "old", "max_msgs": int(max_msgs), "num_replicas": 1, "allow_direct": True,
              "deny_delete": True, "duplicate_window": int(duplicate_window_s * 1e9)}
    return _api(conn, f"$JS.API.STREAM.CREATE.{name}", config)


def publish(conn, subject, payload, headers=None):
    """A JetStream publish: returns the ack {"stream", "seq"[, "duplicate"]}."""
    _, reply = conn.request(subject, payload, headers)
    ack = json.loads(reply)
    if "error" in ack:
        raise NatsError(f"publishing to {subject}: {ack['error']}")
    return ack


def stream_info(conn, stream):
    return _api(conn, f"$JS.API.STREAM.INFO.{stream}", None)


def get_msg(conn, stream, seq):
    """Message seq of stream: {"seq", "subject", "headers", "payload" (bytes)}."""
    m = _api(conn, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": int(seq)})["message"]
    return {
        "seq": m["seq"],
        "subject": m["subject"],
        "headers": parse_headers(base64.b64decode(m["hdrs"])) if m.get("hdrs") else {},
        "payload": base64.b64decode(m.get("data", "")),
    }


def all_msgs(conn, stream):
    """Every message the stream holds, in sequence order (gaps from deleted messages skipped)."""
    state = stream_info(conn, stream)["state"]
    out = []
    if state.get("messages", 0) == 0:
        return out
    for seq in range(state["first_seq"], state["last_seq"] + 1):
        try:
            out.append(get_msg(conn, stream, seq))
        except NatsError as e:
            if "10037" not in str(e):  # no message found: deleted
                raise
    return out


def _printable(msg, payload_file=None):
    out = {"seq": msg["seq"], "subject": msg["subject"], "headers": msg["headers"]}
    if payload_file is None:
        out["data"] = base64.b64encode(msg["payload"]).decode()
    else:
        with open(payload_file, "wb") as f:
            f.write(msg["payload"])
        out["file"] = payload_file
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("stream-info")
    a.add_argument("url")
    a.add_argument("stream")
    a = sub.add_parser("get-msg")
    a.add_argument("url")
    a.add_argument("stream")
    a.add_argument("seq", type=int)
    a.add_argument("--out", help="write the raw payload to this file instead of printing it")
    a = sub.add_parser("create-stream")
    a.add_argument("url")
    a.add_argument("stream")
    a.add_argument("subject")
    a.add_argument("--max-msgs", type=int, default=1024)
    a.add_argument("--duplicate-window", type=float, default=120.0, help="seconds")
    a = sub.add_parser("publish")
    a.add_argument("url")
    a.add_argument("subject")
    a.add_argument("file", help="the payload")
    a.add_argument("--header", action="append", default=[], help="NAME=VALUE, repeatable")
    a = sub.add_parser("get-all")
    a.add_argument("url")
    a.add_argument("stream")
    a.add_argument("--dir", help="write each payload to DIR/<seq>.bin instead of printing it")
    args = p.parse_args(argv)
    try:
        conn = NatsConnection(args.url, args.timeout)
        try:
            if args.cmd == "stream-info":
                print(json.dumps(stream_info(conn, args.stream), indent=2))
            elif args.cmd == "create-stream":
                create_stream(conn, args.stream, args.subject, args.max_msgs, args.duplicate_window)
            elif args.cmd == "publish":
                with open(args.file, "rb") as f:
                    payload = f.read()
                headers = dict(h.split("=", 1) for h in args.header)
                print(json.dumps(publish(conn, args.subject, payload, headers)))
            elif args.cmd == "get-msg":
                print(json.dumps(_printable(get_msg(conn, args.stream, args.seq), args.out)))
            else:
                for m in all_msgs(conn, args.stream):
                    f = os.path.join(args.dir, f"{m['seq']}.bin") if args.dir else None
                    print(json.dumps(_printable(m, f)))
        finally:
            conn.close()
    except (OSError, NatsError) as e:
        print(f"nats_tool: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
