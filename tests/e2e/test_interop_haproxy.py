"""Interop a): PROXY v2 and v1 headers produced by a real HAProxy (send-proxy-v2 /
send-proxy) decode, with our decoder (xproxy-wire proxy-decode), to the address and port
the test client bound to; the bytes after the header are exactly what the client sent."""

import socket

from harness import CaptureServer, E2ETestCase, HAProxy, main, parse_kv, wait_until, wire


class HAProxyInterop(E2ETestCase):
    def roundtrip(self, mode, want_version):
        cap = CaptureServer()
        self.addCleanup(cap.close)
        hp = HAProxy(self.sandbox, self.procs, cap.port, mode=mode)
        for i, client in enumerate(["127.0.0.5", "127.0.0.6"]):
            s = socket.socket()
            s.bind((client, 0))
            client_port = s.getsockname()[1]
            s.connect(("127.0.0.1", hp.port))
            payload = b"EHLO client%d.example\r\n" % i
            s.sendall(payload)
            # HAProxy's own readiness probe is a session too: find ours by its payload.
            raw = wait_until(lambda: next((b for b in cap.sessions if b.endswith(payload)), None), 10, 0.02,
                             "payload at capture server")
            s.close()
            rc, out, err = wire(["proxy-decode"], raw)
            self.assertEqual(rc, 0, err + out.decode())
            kv = parse_kv(out)
            self.assertEqual(kv["version"], str(want_version))
            self.assertEqual(kv["command"], "PROXY")
            self.assertEqual(kv["family"], "INET")
            self.assertEqual(kv["source"], client)
            self.assertEqual(kv["source_port"], str(client_port))
            self.assertEqual(kv["destination"], "127.0.0.1")
            self.assertEqual(kv["destination_port"], str(hp.port))
            self.assertEqual(raw[int(kv["length"]):], payload, "decoder consumed exactly the header")

    def test_send_proxy_v2(self):
        self.roundtrip("send-proxy-v2", 2)

    def test_send_proxy_v1(self):
        self.roundtrip("send-proxy", 1)

    def test_truncated_haproxy_header_is_incomplete(self):
        cap = CaptureServer()
        self.addCleanup(cap.close)
        hp = HAProxy(self.sandbox, self.procs, cap.port, mode="send-proxy-v2")
        s = socket.create_connection(("127.0.0.1", hp.port))
        s.sendall(b"x")
        raw = wait_until(lambda: next((b for b in cap.sessions if b.endswith(b"x")), None), 10, 0.02, "capture")
        s.close()
        raw = raw[:-1]
        for cut in range(1, len(raw)):
            rc, out, _ = wire(["proxy-decode"], raw[:cut])
            self.assertEqual(rc, 1, "prefix of %d bytes must not decode" % cut)
            self.assertIn(b"error=incomplete", out)


if __name__ == "__main__":
    main()
