"""The shim in other kinds of legacy servers behind a real HAProxy (send-proxy-v2):
nginx's stream module (accept4 + non-blocking sockets + epoll, forking workers) logging
$remote_addr, and a threaded server with four threads blocked in accept() on one
listener. Clients bound to 127.0.0.66 and 127.0.0.77 are seen as themselves; without the
shim nginx sees HAProxy's 127.0.0.1."""

import os
import socket

from harness import E2ETestCase, HAProxy, Nginx, binary, free_port, main, read_text, wait_until


def ask(port, source, wait_first=True):
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    data = b""
    if wait_first:  # let the server speak first, then half-close
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    s.shutdown(socket.SHUT_WR)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


class LegacyServers(E2ETestCase):
    def nginx(self, with_shim):
        port = free_port()
        env = dict(os.environ)
        if with_shim:
            self.shim_log = self.sandbox.path("shim.log")
            self.sandbox.logs.append(self.shim_log)
            env.update({"LD_PRELOAD": binary("preload/libxproxy-preload.so"), "XPROXY_TRUSTED": "127.0.0.1",
                        "XPROXY_PORTS": str(port), "XPROXY_LOG": "file:" + self.shim_log})
        nginx = Nginx(self.sandbox, self.procs, env=env, port=port, worker_connections=256)
        return port, nginx.access

    def test_nginx_without_shim_sees_the_proxy(self):
        port, _ = self.nginx(with_shim=False)
        hp = HAProxy(self.sandbox, self.procs, port, mode=None)
        self.assertEqual(ask(hp.port, "127.0.0.66"), "127.0.0.1\n")

    def test_nginx_with_shim_sees_the_client(self):
        port, access = self.nginx(with_shim=True)
        hp = HAProxy(self.sandbox, self.procs, port, mode="send-proxy-v2")
        for i in range(20):  # several workers, many connections
            self.assertEqual(ask(hp.port, "127.0.0.66"), "127.0.0.66\n")
            self.assertEqual(ask(hp.port, "127.0.0.77"), "127.0.0.77\n")
        wait_until(lambda: read_text(access).count("127.0.0.77:") >= 20, 10, 0.1, "nginx access log")
        log = read_text(access)
        self.assertEqual(log.count("127.0.0.66:"), 20, log)
        # At most one line for HAProxy's own readiness probe, which really comes from 127.0.0.1.
        self.assertLessEqual(log.count("127.0.0.1:"), 1, log)
        # A client speaking to nginx directly is not trusted and keeps its own address.
        self.assertEqual(ask(port, "127.0.0.88"), "127.0.0.88\n")

    def test_threaded_server(self):
        env = dict(os.environ, LD_PRELOAD=binary("preload/libxproxy-preload.so"), XPROXY_TRUSTED="127.0.0.1",
                   XPROXY_LOG="stderr")
        out = self.sandbox.path("threads.out")
        with open(out, "wb") as f:
            self.procs.start("threads", [binary("tests/preload_test_server"), "threads"], stdout=f, env=env)
        port = int(wait_until(lambda: next((l[5:] for l in read_text(out).splitlines() if l.startswith("port=")),
                                           None), 10, 0.05, "server port"))
        hp = HAProxy(self.sandbox, self.procs, port, mode="send-proxy-v2")
        for client in ["127.0.0.66", "127.0.0.77"] * 10:
            answer = ask(hp.port, client, wait_first=True)
            self.assertIn("peer=%s:" % client, answer)
            self.assertIn("accept=%s:" % client, answer)
            self.assertIn("data=\n", answer)


if __name__ == "__main__":
    main()
