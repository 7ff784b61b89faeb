"""The admin endpoints: shapes, status codes, and the ones that change the server."""

import json
import re
import socket

import harness
import prometheus
from harness import IntegrationTestCase

STAT_LINE = re.compile(r"[A-Za-z0-9_.:\-]+: -?[0-9]+")


class PrometheusValidatorTest(IntegrationTestCase):
    """The validator must be able to fail, or passing it means nothing."""

    GOOD = ('# TYPE envoy_a_total counter\nenvoy_a_total{x="1"} 3\nenvoy_a_total{x="2\\"q"} 4\n'
            '# HELP envoy_b a gauge\n# TYPE envoy_b gauge\nenvoy_b -1.5e3\n')

    def test_accepts_well_formed_exposition(self):
        self.assertEqual(prometheus.validate(self.GOOD), [])

    def test_rejects_each_kind_of_violation(self):
        bad = {
            "no TYPE": "envoy_x 1\n",
            "duplicate TYPE": "# TYPE a gauge\na 1\n# TYPE a gauge\n",
            "bad metric name": "# TYPE 1a gauge\n1a 1\n",
            "bad value": "# TYPE a gauge\na one\n",
            "unescaped quote": '# TYPE a gauge\na{x="""} 1\n',
            "bad label name": '# TYPE a gauge\na{1x="v"} 1\n',
            "duplicate series": '# TYPE a gauge\na{x="v"} 1\na{x="v"} 2\n',
            "split family": "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"2\"} 1\n",
            "missing newline": "# TYPE a gauge\na 1",
            "extra space": "# TYPE a gauge\na  1\n",
        }
        for why, text in bad.items():
            with self.subTest(why):
                self.assertNotEqual(prometheus.validate(text), [], why)


class AdminTest(IntegrationTestCase):
    def setUp(self):
        self.upstream = self.echo_server()
        self.proxy = self.start_proxy(harness.simple_config([self.upstream.port]), concurrency=2)

    def test_ready_answers_200_live(self):
        self.assertEqual(self.proxy.get("/ready"), (200, "LIVE\n"))

    def test_server_info_is_json_with_state_live(self):
        status, body = self.proxy.get("/server_info")
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(info["state"], "LIVE")
        self.assertEqual(info["node"], {"id": "it-node", "cluster": "it"})
        self.assertEqual(info["command_line_options"]["concurrency"], 2)
        self.assertEqual(info["command_line_options"]["config_path"], self.proxy.config_path)
        self.assertTrue(info["version"])

    def test_memory_reports_heap_in_envoys_shape_and_grows_with_held_connections(self):
        def allocated():
            status, body = self.proxy.get("/memory")
            self.assertEqual(status, 200)
            mem = json.loads(body)
            self.assertEqual(set(mem), {"allocated", "heap_size", "pageheap_unmapped", "pageheap_free",
                                        "total_thread_cache", "total_physical_bytes"})
            self.assertLessEqual(int(mem["allocated"]), int(mem["heap_size"]))
            return int(mem["allocated"])
        before = allocated()
        conns = [socket.create_connection(("127.0.0.1", self.proxy.listener_port())) for _ in range(200)]
        try:
            for c in conns:
                c.sendall(b"x")
                self.assertEqual(c.recv(1), b"x")
            self.assertGreater(allocated() - before, 200 * 256, "200 live sessions hold some heap")
        finally:
            for c in conns:
                c.close()

    def test_stats_text_json_and_filter(self):
        with harness.connect(self.proxy.listener_port()) as s:
            harness.echo_roundtrip(s, b"counted")
        self.proxy.wait_stat("server.total_connections", 0)
        status, body = self.proxy.get("/stats")
        self.assertEqual(status, 200)
        lines = body.splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, STAT_LINE)
        names = [l.rpartition(": ")[0] for l in lines]
        self.assertEqual(len(names), len(set(names)), "a stat is listed twice")
        text = self.proxy.stats()
        for required in ("server.live", "server.state", "server.total_connections", "server.concurrency",
                         "server.uptime", "server.config_reload_success", "server.config_reload_failure",
                         "listener_manager.total_listeners_active", "cluster.backend.membership_total",
                         "tcp.main.downstream_cx_total"):
            self.assertIn(required, text)
        self.assertEqual(text["server.live"], 1)
        self.assertEqual(text["server.concurrency"], 2)
        self.assertEqual(text["cluster.backend.membership_total"], 1)
        self.assertEqual(text["tcp.main.downstream_cx_total"], 1)
        self.assertEqual(text[self.proxy.listener_stat_prefix() + "downstream_cx_total"], 1)

        status, body = self.proxy.get("/stats?format=json")
        self.assertEqual(status, 200)
        as_json = {s["name"]: s["value"] for s in json.loads(body)["stats"]}
        self.assertEqual(set(as_json), set(text))
        self.assertEqual(as_json["tcp.main.downstream_cx_total"], 1)

        status, body = self.proxy.get("/stats?filter=%5Ecluster%5C.backend%5C.upstream_cx_total%24")
        self.assertEqual((status, body), (200, "cluster.backend.upstream_cx_total: 1\n"))
        status, _ = self.proxy.get("/stats?filter=%28unclosed")
        self.assertEqual(status, 400)

    def test_stats_prometheus_passes_strict_validator(self):
        with harness.connect(self.proxy.listener_port()) as s:
            harness.echo_roundtrip(s, b"make some numbers move")
        status, body = self.proxy.get("/stats/prometheus")
        self.assertEqual(status, 200)
        self.assertEqual(prometheus.validate(body), [])
        families = re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M)
        self.assertIn(("envoy_server_live", "gauge"), families)
        self.assertRegex(body, r'(?m)^envoy_cluster_upstream_cx_total\{envoy_cluster_name="backend"\} 1$')
        # A second render (other values now) is just as valid.
        self.assertEqual(prometheus.validate(self.proxy.get("/stats/prometheus")[1]), [])

    def test_stats_prometheus_with_many_listeners_clusters_and_odd_names_passes_validator(self):
        # Families with several samples each, and names that need escaping in label values.
        odd = 'we"ird\\name.with.dots'
        cfg = harness.bootstrap(
            [harness.tcp_proxy_listener("l1", "c1"), harness.tcp_proxy_listener("l2", odd, stat_prefix="tcp.pre-fix"),
             harness.tcp_proxy_listener("l3", "c1", stat_prefix="tcp.pre-fix")],
            [harness.static_cluster("c1", [self.upstream.port]), harness.static_cluster(odd, [self.upstream.port])])
        proxy = self.start_proxy(cfg)
        for name, (_, port) in proxy.listeners().items():
            with harness.connect(port) as s:
                harness.echo_roundtrip(s, name.encode())
        status, body = proxy.get("/stats/prometheus")
        self.assertEqual(status, 200)
        self.assertEqual(prometheus.validate(body), [])
        self.assertIn('envoy_cluster_upstream_cx_total{envoy_cluster_name="we\\"ird\\\\name.with.dots"} 1\n', body)
        self.assertEqual(len(re.findall(r"(?m)^envoy_listener_downstream_cx_total\{", body)), 3)
        self.assertEqual(len(re.findall(r"(?m)^# TYPE envoy_listener_downstream_cx_total ", body)), 1)

    def test_config_dump_is_bootstrap_config_dump(self):
        status, body = self.proxy.get("/config_dump")
        self.assertEqual(status, 200)
        dump = json.loads(body)
        self.assertEqual(dump["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")
        bootstrap = dump["configs"][0]["bootstrap"]
        self.assertEqual(bootstrap["static_resources"]["listeners"][0]["name"], "main")
        self.assertEqual(bootstrap["static_resources"]["clusters"][0]["name"], "backend")
        self.assertEqual(bootstrap["node"]["id"], "it-node")

    def test_listeners_text_and_json_agree(self):
        port = self.proxy.listener_port()
        self.assertEqual(self.proxy.get("/listeners"), (200, "main::127.0.0.1:%d\n" % port))
        with harness.connect(port) as s:
            harness.echo_roundtrip(s, b"the advertised port is the real one")

    def test_help_lists_endpoints_and_unknown_path_is_404(self):
        status, body = self.proxy.get("/help")
        self.assertEqual(status, 200)
        for path in ("/ready", "/stats", "/stats/prometheus", "/config_dump", "/quitquitquit", "/logging"):
            self.assertIn(path, body)
        self.assertEqual(self.proxy.get("/no/such/endpoint")[0], 404)

    def test_get_on_post_only_endpoints_answers_400_and_changes_nothing(self):
        for path in ("/quitquitquit", "/drain_listeners", "/logging?level=debug"):
            with self.subTest(path):
                self.assertEqual(self.proxy.get(path)[0], 400)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.proxy.get("/ready"), (200, "LIVE\n"))
        with harness.connect(self.proxy.listener_port()) as s:
            harness.echo_roundtrip(s, b"listeners still up")

    def test_logging_level_change(self):
        self.assertEqual(self.proxy.post("/logging?level=debug")[0], 200)
        self.assertEqual(self.proxy.post("/logging?level=info")[0], 200)
        self.assertEqual(self.proxy.post("/logging?level=shouting")[0], 400)
        self.assertEqual(self.proxy.post("/logging")[0], 400)
        self.assertTrue(self.proxy.alive())

    def test_drain_listeners_stops_accepting_but_keeps_admin(self):
        port = self.proxy.listener_port()
        live = self.connect(port)
        live.settimeout(5)
        harness.echo_roundtrip(live, b"before")
        self.assertEqual(self.proxy.post("/drain_listeners")[0], 200)
        harness.wait_until(lambda: harness.refuses_connections(port), 5, what="listener to close")
        self.assertEqual(self.proxy.get("/ready")[0], 503)
        harness.echo_roundtrip(live, b"after")

    def raw_admin(self, data):
        """Sends raw bytes to the admin port; returns the reply, or b"<reset>" when the server
        cut the connection while we were still sending (it may refuse a huge request early)."""
        with socket.create_connection(self.proxy.admin, timeout=5) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                return harness.recv_until_eof(s)
            except (ConnectionResetError, BrokenPipeError, OSError) as e:
                if isinstance(e, socket.timeout):
                    raise
                return b"<reset>"

    def test_malformed_and_oversized_requests_get_4xx_and_admin_survives(self):
        cases = {
            b"garbage\r\n\r\n": b"HTTP/1.1 400 ",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500: b"HTTP/1.1 400 ",  # a TLS hello
            b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\n\r\n": b"HTTP/1.1 413 ",
            b"GET /ready HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n": b"HTTP/1.1 413 ",
            b"DELETE /quitquitquit HTTP/1.1\r\n\r\n": b"HTTP/1.1 400 ",
            b"GET /stats?filter=" + b"(" * 1000 + b" HTTP/1.1\r\n\r\n": b"HTTP/1.1 400 ",
            b"GET /ready HTTP/1.0\r\n\r\n": b"HTTP/1.1 200 ",
        }
        for request, status_line in cases.items():
            with self.subTest(request[:40]):
                reply = self.raw_admin(request)
                if status_line == b"HTTP/1.1 413 " and reply == b"<reset>":
                    continue  # refused before we finished sending: the 413 can be lost to the RST
                self.assertTrue(reply.startswith(status_line), reply[:200])
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.proxy.get("/ready"), (200, "LIVE\n"))

    def test_first_of_pipelined_requests_is_answered(self):
        # One request per connection, but a client may pipeline: the first request must be
        # answered as itself, not mixed up with the one behind it.
        reply = self.raw_admin(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /server_info HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:200])
        self.assertTrue(reply.endswith(b"\r\n\r\nLIVE\n"), reply[-200:])

    def test_post_quitquitquit_exits_0(self):
        self.assertEqual(self.proxy.post("/quitquitquit"), (200, "OK\n"))
        self.assertEqual(self.proxy.wait_exit(5), 0)


class AdminLoggingTest(IntegrationTestCase):
    def test_logging_debug_takes_effect(self):
        # A failed upstream connect is logged at debug level only.
        dead = harness.closed_port()
        proxy = self.start_proxy(harness.simple_config([dead]))
        self.assertEqual(proxy.post("/logging?level=debug")[0], 200)
        with harness.connect(proxy.listener_port()) as s:
            harness.closed_by_peer(s)
        proxy.wait_stat("cluster.backend.upstream_cx_connect_fail", 1)
        harness.wait_until(lambda: "connect attempt 1 failed" in proxy.log(), 5, what="a debug log line")
        self.assertEqual(proxy.post("/logging?level=warning")[0], 200)


if __name__ == "__main__":
    harness.main()
