"""Interop a): PROXY headers produced by a real HAProxy (send-proxy-v2 / send-proxy) and
captured on the wire decode, with our decoder (xproxy-wire proxy-decode), to the address
and port the test client bound to; the decoder consumes exactly the header (whose length
the test computes on its own) and the bytes after it are exactly what the client sent.
HAProxy's CRC32C and UNIQUE_ID TLVs, its IPv6 headers and its LOCAL health checks decode
too, and a header altered after HAProxy checksummed it is refused."""

import socket

from harness import E2ETestCase, HAProxy, main, parse_kv, wire

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def header_length(raw):
    """The header's length from the raw bytes alone, without our decoder."""
    if raw.startswith(V2_SIGNATURE):
        return 16 + int.from_bytes(raw[14:16], "big")
    return raw.index(b"\r\n") + 2


class HAProxyInterop(E2ETestCase):
    def connect_through(self, hp, cap, client, payload):
        """Connect from `client` through HAProxy; returns (client port, captured bytes)."""
        fam = socket.AF_INET6 if ":" in client else socket.AF_INET
        with socket.socket(fam) as s:
            s.bind((client, 0))
            client_port = s.getsockname()[1]
            s.connect((hp.listen_host, hp.port))
            s.sendall(payload)
            # HAProxy's readiness probe is a session too: find ours by its payload.
            raw = cap.wait_session(lambda b: b.endswith(payload), what="payload at the capture server")
        return client_port, raw

    def decode(self, raw):
        rc, out, err = wire(["proxy-decode"], raw)
        self.assertEqual(rc, 0, "proxy-decode refused HAProxy's header %r: %s%s" % (raw, out.decode(), err))
        return parse_kv(out)

    def roundtrip(self, mode, want_version, clients=("127.0.0.5", "127.0.0.6"), listen_host="127.0.0.1"):
        cap = self.capture(host="127.0.0.1")
        hp = HAProxy(self.sandbox, self.procs, cap.port, mode=mode, listen_host=listen_host)
        for i, client in enumerate(clients):
            payload = b"EHLO client%d.example\r\n" % i
            client_port, raw = self.connect_through(hp, cap, client, payload)
            if want_version == 1:
                self.assertTrue(raw.startswith(b"PROXY TCP"), raw)
            else:
                self.assertTrue(raw.startswith(V2_SIGNATURE), raw)
            kv = self.decode(raw)
            self.assertEqual(kv["version"], str(want_version))
            self.assertEqual(kv["command"], "PROXY")
            self.assertEqual(kv["family"], "INET6" if ":" in client else "INET")
            self.assertEqual(kv["transport"], "STREAM")
            self.assertEqual(kv["source"], client)
            self.assertEqual(kv["source_port"], str(client_port))
            self.assertEqual(kv["destination"], listen_host)
            self.assertEqual(kv["destination_port"], str(hp.port))
            self.assertEqual(int(kv["length"]), header_length(raw))
            self.assertEqual(raw[int(kv["length"]):], payload, "the bytes after the header are the client's")

    def test_send_proxy_v2(self):
        self.roundtrip("send-proxy-v2", 2)

    def test_send_proxy_v1(self):
        self.roundtrip("send-proxy", 1)

    def test_send_proxy_v2_ipv6(self):
        self.roundtrip("send-proxy-v2", 2, clients=("::1",), listen_host="::1")

    def test_send_proxy_v1_ipv6(self):
        self.roundtrip("send-proxy", 1, clients=("::1",), listen_host="::1")

    def test_v2_crc32c_and_unique_id(self):
        cap = self.capture()
        hp = HAProxy(self.sandbox, self.procs, cap.port, mode="send-proxy-v2",
                     server_options="proxy-v2-options crc32c,unique-id",
                     frontend_lines=["unique-id-format xproxy-%ci-%cp"])
        client_port, raw = self.connect_through(hp, cap, "127.0.0.5", b"QUIT\r\n")
        kv = self.decode(raw)  # the decoder verifies the CRC32C HAProxy computed
        self.assertEqual(kv["source"], "127.0.0.5")
        uid = "xproxy-127.0.0.5-%d" % client_port
        self.assertEqual(kv["unique_id"], uid)
        tlvs = [kv["tlv"]] + kv.get("tlv*", [kv["tlv"]])[1:]
        self.assertEqual(tlvs, ["0x03:4", "0x05:%d" % len(uid)])
        self.assertEqual(int(kv["length"]), header_length(raw))
        # One bit changed in the source address after HAProxy checksummed the header.
        bad = bytearray(raw)
        bad[16 + 3] ^= 0x01  # last byte of the IPv4 source address
        rc, out, _ = wire(["proxy-decode"], bytes(bad))
        self.assertEqual(rc, 1, out)
        self.assertIn(b"error=CRC32C mismatch", out)

    def test_v2_health_check_is_local(self):
        cap = self.capture()
        HAProxy(self.sandbox, self.procs, cap.port, mode="send-proxy-v2",
                server_options="proxy-v2-options crc32c check check-send-proxy inter 200ms")
        # A health check connects, sends its header and closes: no payload.
        raw = cap.wait_session(lambda b: b.startswith(V2_SIGNATURE) and b[12] == 0x20, what="a LOCAL health check")
        kv = self.decode(raw)
        self.assertEqual((kv["version"], kv["command"], kv["family"]), ("2", "LOCAL", "UNSPEC"))
        self.assertNotIn("source", kv)
        # HAProxy appends its CRC32C TLV even here; the decoder skips LOCAL's block whole.
        self.assertEqual(raw[16:19], b"\x03\x00\x04")
        self.assertEqual(int(kv["length"]), len(raw))

    def test_truncated_haproxy_header_is_incomplete(self):
        for mode in ("send-proxy-v2", "send-proxy"):
            cap = self.capture()
            hp = HAProxy(self.sandbox, self.procs, cap.port, mode=mode)
            _, raw = self.connect_through(hp, cap, "127.0.0.7", b"x")
            raw = raw[:-1]
            for cut in range(1, len(raw)):
                rc, out, _ = wire(["proxy-decode"], raw[:cut])
                self.assertEqual(rc, 1, "%s: a prefix of %d bytes must not decode" % (mode, cut))
                self.assertIn(b"error=incomplete", out)


if __name__ == "__main__":
    main()
