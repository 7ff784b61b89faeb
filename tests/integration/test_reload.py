"""SIGHUP reloads the config file: a valid one replaces listeners and clusters without
dropping connections on unchanged listeners; an invalid one is counted and ignored."""

import json
import signal
import socket

import harness
from harness import IntegrationTestCase


class ReloadTest(IntegrationTestCase):
    def setUp(self):
        self.a = self.echo_server(banner=b"A")
        self.b = self.echo_server(banner=b"B")

    def config_v1(self):
        return harness.bootstrap([harness.tcp_proxy_listener("main", "cluster_a")],
                                 [harness.static_cluster("cluster_a", [self.a.port])])

    def config_v2(self):
        # Same listener name and address, pointed at a new cluster; plus a second listener.
        return harness.bootstrap([harness.tcp_proxy_listener("main", "cluster_b"),
                                  harness.tcp_proxy_listener("second", "cluster_b")],
                                 [harness.static_cluster("cluster_b", [self.b.port])])

    def banner_of_new_connection(self, port):
        with harness.connect(port) as s:
            s.settimeout(5)
            banner = harness.recv_exactly(s, 1)
            harness.echo_roundtrip(s, b"ping")
            return banner

    def reload(self, proxy, config, counter):
        before = proxy.stat(counter)
        proxy.write_config(config)
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat(counter, before + 1)

    def test_sighup_good_reload_keeps_live_connection_and_applies_new_config(self):
        proxy = self.start_proxy(self.config_v1())
        port = proxy.listener_port("main")
        old = self.connect(port)
        old.settimeout(5)
        self.assertEqual(harness.recv_exactly(old, 1), b"A")
        harness.echo_roundtrip(old, b"before reload")

        self.reload(proxy, self.config_v2(), "server.config_reload_success")
        self.assertEqual(proxy.stat("server.config_reload_failure"), 0)
        listeners = harness.wait_until(lambda: (lambda l: l if "second" in l else None)(proxy.listeners()), 5,
                                       what="listener 'second' to appear")
        self.assertEqual(listeners["main"][1], port, "an unchanged listener must keep its socket")

        # The connection opened before the reload still talks to its original upstream.
        harness.echo_roundtrip(old, b"after reload")
        # New connections follow the new config, on the old listener and on the new one.
        self.assertEqual(self.banner_of_new_connection(port), b"B")
        self.assertEqual(self.banner_of_new_connection(listeners["second"][1]), b"B")
        harness.echo_roundtrip(old, b"still alive")
        self.assertEqual(self.a.accepted_count(), 1)
        self.assertEqual(self.b.accepted_count(), 2)

        proxy.wait_stat("server.total_connections", 1)  # only `old` is left
        stats = proxy.stats()
        self.assertEqual(stats["listener_manager.listener_added"], 2)
        self.assertEqual(stats["listener_manager.listener_in_place_updated"], 1)
        self.assertEqual(stats["listener_manager.total_listeners_active"], 2)
        # The admin view follows the running config.
        dump = json.loads(proxy.get("/config_dump")[1])["configs"][0]["bootstrap"]
        self.assertEqual([l["name"] for l in dump["static_resources"]["listeners"]], ["main", "second"])
        self.assertEqual([c["name"] for c in dump["static_resources"]["clusters"]], ["cluster_b"])
        self.assertServerHealthy(self.a, self.b)

    def test_sighup_bad_reload_counts_failure_and_keeps_old_config(self):
        proxy = self.start_proxy(self.config_v1())
        port = proxy.listener_port("main")
        old = self.connect(port)
        old.settimeout(5)
        self.assertEqual(harness.recv_exactly(old, 1), b"A")

        self.reload(proxy, "static_resources: {listeners: [\n  this is: not: valid yaml\n", "server.config_reload_failure")
        self.assertEqual(proxy.stat("server.config_reload_success"), 0)
        self.assertIn("config reload rejected", proxy.log())
        self.assertEqual(proxy.ready_status(), 200)
        self.assertEqual(proxy.listeners(), {"main": (harness.LOOPBACK, port)})
        harness.echo_roundtrip(old, b"survived a bad reload")
        self.assertEqual(self.banner_of_new_connection(port), b"A")

        # A config that parses but is invalid (unknown cluster) is rejected the same way.
        bad = self.config_v2()
        bad["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["cluster"] = "nope"
        self.reload(proxy, bad, "server.config_reload_failure")
        self.assertEqual(self.banner_of_new_connection(port), b"A")
        self.assertNotIn("second", proxy.listeners())
        harness.echo_roundtrip(old, b"survived another bad reload")

        # And a good config still applies afterwards.
        self.reload(proxy, self.config_v2(), "server.config_reload_success")
        self.assertEqual(self.banner_of_new_connection(port), b"B")

    def test_sighup_reload_that_cannot_bind_keeps_old_config_and_its_stats(self):
        proxy = self.start_proxy(self.config_v1())
        port = proxy.listener_port("main")
        with socket.socket() as busy:
            busy.bind((harness.LOOPBACK, 0))
            busy.listen(1)
            cfg = harness.bootstrap(
                [harness.tcp_proxy_listener("main", "cluster_a"),
                 harness.tcp_proxy_listener("second", "cluster_a", port=busy.getsockname()[1])],
                [harness.static_cluster("cluster_a", [self.a.port, self.b.port])])
            self.reload(proxy, cfg, "server.config_reload_failure")
        self.assertIn("cannot bind", proxy.log())
        stats = proxy.stats()
        self.assertEqual(stats["server.config_reload_success"], 0)
        self.assertEqual(stats["listener_manager.listener_create_failure"], 1)
        self.assertEqual(stats["listener_manager.total_listeners_active"], 1)
        # The running cluster still has one endpoint, and its stats must say so.
        self.assertEqual(stats["cluster.cluster_a.membership_total"], 1)
        self.assertEqual(proxy.listeners(), {"main": (harness.LOOPBACK, port)})
        for _ in range(4):
            self.assertEqual(self.banner_of_new_connection(port), b"A")
        self.assertEqual(self.b.accepted_count(), 0)

    def test_sighup_removing_listener_stops_it_and_moving_listener_rebinds(self):
        proxy = self.start_proxy(self.config_v2())
        ports = proxy.listeners()
        # Connections accepted by the listeners that go away are not cut by the reload.
        survivors = {}
        for name in ("main", "second"):
            survivors[name] = self.connect(ports[name][1])
            survivors[name].settimeout(5)
            self.assertEqual(harness.recv_exactly(survivors[name], 1), b"B")
        moved_to = harness.closed_port()
        cfg = harness.bootstrap([harness.tcp_proxy_listener("main", "cluster_b", port=moved_to)],
                                [harness.static_cluster("cluster_b", [self.b.port])])
        self.reload(proxy, cfg, "server.config_reload_success")
        self.assertEqual(proxy.listeners(), {"main": (harness.LOOPBACK, moved_to)})
        self.assertEqual(self.banner_of_new_connection(moved_to), b"B")
        for name in ("main", "second"):
            harness.wait_until(lambda: harness.refuses_connections(ports[name][1]), 5, what="old port of %s to close" % name)
        self.assertEqual(proxy.stat("listener_manager.listener_removed"), 1)
        for name, sock in survivors.items():
            harness.echo_roundtrip(sock, b"%s outlived its listener" % name.encode())

    def test_sighup_changes_connection_limit_in_place(self):
        proxy = self.start_proxy(self.config_v1())
        port = proxy.listener_port("main")
        prefix = proxy.listener_stat_prefix("main")
        first = self.connect(port)
        first.settimeout(5)
        self.assertEqual(harness.recv_exactly(first, 1), b"A")
        limited = self.config_v1()
        limited["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {
            "envoy.resource_limits.listener.main.connection_limit": 1}}]}
        self.reload(proxy, limited, "server.config_reload_success")
        self.assertEqual(proxy.listener_port("main"), port)
        extra = self.connect(port)
        self.assertEqual(harness.closed_by_peer(extra, timeout=5)[1], b"")
        proxy.wait_stat(prefix + "downstream_cx_overflow", 1)
        harness.echo_roundtrip(first, b"the one allowed connection")


if __name__ == "__main__":
    harness.main()
