"""PROXY v2 headers authenticated with the xproxy HMAC TLV (0xE3) carry a signed time
(TIME TLV 0xE4). The shim with XPROXY_HMAC_KEY_FILE accepts a fresh header, whether made
by xproxy-wire proxy-encode or by the independent encoder below, and drops a captured
header replayed after the 60-second window, a header signed ahead of it, and an authentic
header without a time (what earlier senders wrote, replayable for ever). xproxy-wire
proxy-decode reports the same verdicts and round-trips proxy-encode's time."""

import hashlib
import hmac
import os
import socket
import struct
import time

from harness import E2ETestCase, binary, main, parse_kv, read_text, wait_until, wire

KEY = b"0123456789abcdef0123456789abcdef"
SIGNATURE = bytes.fromhex("0d0a0d0a000d0a515549540a")


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def signed_header(client, client_port, signed_at=None, key=KEY):
    """A PROXY v2 INET header with the HMAC TLV, TIME TLV first when signed_at is given,
    made from doc/wire-formats.md alone (Python's hmac, not libxproxy)."""
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", client_port, 25)
    tlvs = tlv(0xE0, b"client.example")
    if signed_at is not None:
        tlvs += tlv(0xE4, struct.pack(">Q", signed_at))
    tlvs += bytes([0xE3, 0, 33, 1])  # HMAC, key id 1, MAC follows
    body = addresses + tlvs + bytes(32)
    header = SIGNATURE + b"\x21\x11" + struct.pack(">H", len(body)) + body
    return header[:-32] + hmac.new(key, header, hashlib.sha256).digest()


def talk(port, data):
    """Sends data from 127.0.0.1 (trusted), half-closes, returns the server's answer
    ("" when the shim dropped the connection, which may happen before the half-close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # dropped (closed or reset) before we finished: no answer
            return ""
        out = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace")
    finally:
        s.close()


class ProxyHmacFreshness(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.key_file = self.sandbox.write("hmac.key", KEY, mode=0o600)

    def start_server(self, name="shim", **settings):
        log = self.sandbox.path(name + ".log")
        self.sandbox.logs.append(log)
        env = dict(os.environ, LD_PRELOAD=binary("preload/libxproxy-preload.so"), XPROXY_TRUSTED="127.0.0.1",
                   XPROXY_HMAC_KEY_FILE=self.key_file, XPROXY_LOG="file:" + log, **settings)
        out = self.sandbox.path(name + ".out")
        with open(out, "wb") as f:
            self.procs.start(name, [binary("tests/preload_test_server"), "blocking"], stdout=f, env=env)
        port = wait_until(lambda: next((l[5:] for l in read_text(out).splitlines() if l.startswith("port=")), None),
                          10, 0.05, "server port")
        return int(port), log

    def test_shim_accepts_only_fresh_headers(self):
        port, log = self.start_server()
        now = int(time.time())
        rc, fresh, err = wire(["proxy-encode", "--version", "2", "--source", "192.0.2.80:80", "--destination",
                               "127.0.0.1:25", "--hmac-key-file", self.key_file, "--hmac-key-id", "1"])
        self.assertEqual(rc, 0, err)
        self.assertIn("peer=192.0.2.80:80", talk(port, fresh + b"A"))
        self.assertIn("peer=192.0.2.81:81", talk(port, signed_header("192.0.2.81", 81, now) + b"B"))
        self.assertIn("peer=192.0.2.82:82", talk(port, signed_header("192.0.2.82", 82, now - 50) + b"C"))

        refused = [
            ("replayed an hour later", signed_header("192.0.2.90", 90, now - 3600), "signed too long ago"),
            ("signed an hour ahead", signed_header("192.0.2.91", 91, now + 3600), "signed in the future"),
            ("authentic, no time", signed_header("192.0.2.92", 92), "without a signed time"),
            ("fresh, other key", signed_header("192.0.2.93", 93, now, key=b"another key, another MAC!"),
             "does not verify"),
        ]
        for what, header, reason in refused:
            answer = talk(port, header + b"D")
            self.assertNotIn("peer=", answer, what)
            wait_until(lambda: reason in read_text(log), 10, 0.05, "shim log: " + reason)

    def test_window_is_a_setting(self):
        now = int(time.time())
        port, _ = self.start_server("wide", XPROXY_HMAC_WINDOW="300")
        self.assertIn("peer=192.0.2.83:83", talk(port, signed_header("192.0.2.83", 83, now - 200) + b"E"))
        self.assertNotIn("peer=", talk(port, signed_header("192.0.2.84", 84, now - 400) + b"F"))
        port, log = self.start_server("narrow", XPROXY_HMAC_WINDOW="10")
        self.assertNotIn("peer=", talk(port, signed_header("192.0.2.85", 85, now - 50) + b"G"))
        wait_until(lambda: "signed too long ago" in read_text(log), 10, 0.05, "shim log: too long ago")
        # A bad value makes the shim inert (the application sees its real peer) and says why.
        port, log = self.start_server("bad", XPROXY_HMAC_WINDOW="0")
        answer = talk(port, b"hello")
        self.assertIn("peer=127.0.0.1:", answer)
        wait_until(lambda: "XPROXY_HMAC_WINDOW" in read_text(log), 10, 0.05, "shim log: configuration error")

    def test_wire_round_trip_and_window(self):
        t = 1790000000
        rc, header, err = wire(["proxy-encode", "--version", "2", "--source", "192.0.2.80:80", "--destination",
                                "127.0.0.1:25", "--helo", "client.example", "--hmac-key-file", self.key_file,
                                "--hmac-key-id", "1", "--hmac-time", str(t)])
        self.assertEqual(rc, 0, err)
        # libxproxy writes exactly what the independent encoder writes.
        self.assertEqual(header.hex(), signed_header("192.0.2.80", 80, t).hex())
        rows = [
            ([], 0, "valid"),
            (["--now", str(t + 60)], 0, "valid"),
            (["--now", str(t + 61)], 1, "expired"),
            (["--now", str(t + 61), "--hmac-window", "120"], 0, "valid"),
            (["--now", str(t - 61)], 1, "future"),
        ]
        for extra, want_rc, want in rows:
            args = ["proxy-decode", "--hmac-key-file", self.key_file, "--now", str(t)] + extra
            rc, out, _ = wire(args, header)
            kv = parse_kv(out)
            self.assertEqual((rc, kv.get("hmac"), kv.get("hmac_time")), (want_rc, want, str(t)), extra)
        rc, out, _ = wire(["proxy-decode", "--hmac-key-file", self.key_file], signed_header("192.0.2.80", 80))
        self.assertEqual((rc, parse_kv(out).get("hmac")), (1, "untimed"))
        # Without a key the time is shown, not judged.
        rc, out, _ = wire(["proxy-decode"], header)
        self.assertEqual((rc, parse_kv(out).get("hmac_time"), parse_kv(out).get("hmac")), (0, str(t), None))
        rc, _, err = wire(["proxy-encode", "--version", "2", "--source", "192.0.2.80:80", "--destination",
                           "127.0.0.1:25", "--hmac-time", str(t)])
        self.assertEqual(rc, 2, err)


if __name__ == "__main__":
    main()
