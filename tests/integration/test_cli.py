"""The command line against the real binary: validate mode, config errors pointing at
file:line:column, exit codes, and never a crash on hostile input."""

import copy
import os
import re
import shutil
import signal
import socket
import tempfile
import time

import harness
from harness import IntegrationTestCase

EXIT_OK, EXIT_BAD_CONFIG, EXIT_USAGE, EXIT_STARTUP, EXIT_LOGGING = 0, 1, 2, 3, 4
FAST = 5.0  # seconds any rejection may take


def tcp_proxy_config(cfg):
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


class CliTest(IntegrationTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="portcullis-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.good = harness.simple_config([harness.closed_port()])

    def write(self, name, content):
        path = os.path.join(self.dir, name)
        if isinstance(content, dict):
            content = harness.to_yaml(content)
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        return path

    def run_bin(self, *args, timeout=30):
        start = time.monotonic()
        p = harness.run_portcullis(list(args), timeout=timeout)
        p.elapsed = time.monotonic() - start
        # A negative code is a signal: a crash is never an acceptable answer to bad input.
        self.assertGreaterEqual(p.returncode, 0, "killed by signal %d\n%s" % (-p.returncode, p.stderr[-4000:]))
        return p

    def assert_rejected(self, path, located=None, message=None, mode_args=("--mode", "validate")):
        """Runs the binary on `path`; it must exit 1 quickly. `located` is a (line, column) the
        error must name as path:line:column (or a list of acceptable ones), or True for any."""
        p = self.run_bin("-c", path, *mode_args)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, EXIT_BAD_CONFIG, out[-4000:])
        self.assertLess(p.elapsed, FAST, "took %.1fs to reject %s" % (p.elapsed, path))
        self.assertNotIn("OK", p.stdout.split())
        if located is True:
            self.assertRegex(out, r"(?m)^%s:\d+:\d+: " % re.escape(path))
        elif located:
            options = located if isinstance(located, list) else [located]
            self.assertRegex(out, r"(?m)^%s:(%s): " % (re.escape(path), "|".join("%d:%d" % l for l in options)))
        if message:
            self.assertRegex(out, message)
        return out

    @staticmethod
    def location_of(text, needle):
        """(line, column), 1-based, of the first occurrence of needle in text."""
        offset = text.index(needle)
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return line, column

    # -- validate ------------------------------------------------------------------------------

    def test_validate_good_config_prints_ok_and_exits_0(self):
        p = self.run_bin("-c", self.write("good.yaml", self.good), "--mode", "validate")
        self.assertEqual((p.returncode, p.stdout), (EXIT_OK, "OK\n"), p.stderr)

    def test_validate_good_config_binds_nothing(self):
        # validate must not open the sockets: a config whose port is taken still validates.
        with socket.socket() as busy:
            busy.bind((harness.LOOPBACK, 0))
            busy.listen(1)
            cfg = copy.deepcopy(self.good)
            cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = busy.getsockname()[1]
            p = self.run_bin("-c", self.write("busy.yaml", cfg), "--mode", "validate")
        self.assertEqual((p.returncode, p.stdout), (EXIT_OK, "OK\n"), p.stderr)

    def test_empty_file_is_rejected(self):
        self.assert_rejected(self.write("empty.yaml", ""), message=r"config is empty")
        self.assert_rejected(self.write("blank.yaml", "\n  \n\t\n"), message=r"config is empty")

    def test_binary_garbage_is_rejected_with_location(self):
        for i in range(3):
            with self.subTest(i):
                self.assert_rejected(self.write("garbage%d.yaml" % i, os.urandom(64 * 1024)), located=True)

    def test_100mb_file_is_rejected_quickly(self):
        path = os.path.join(self.dir, "huge.yaml")
        line = b"# " + b"x" * 1021 + b"\n"
        with open(path, "wb") as f:
            f.write(harness.to_yaml(self.good).encode())
            for _ in range(100 * 1024):
                f.write(line)
        self.assertGreaterEqual(os.path.getsize(path), 100 << 20)
        self.assert_rejected(path, message=r"larger than the limit")
        self.assert_rejected(path, message=r"larger than the limit", mode_args=())

    def test_yaml_list_root_is_rejected_at_1_1(self):
        self.assert_rejected(self.write("list.yaml", "- name: a\n- name: b\n"), located=(1, 1),
                             message=r"root must be a map")

    def test_10k_deep_nested_flow_sequence_is_rejected_without_crashing(self):
        self.assert_rejected(self.write("deep.yaml", "[" * 10000 + "]" * 10000 + "\n"), located=True)
        self.assert_rejected(self.write("deep_unclosed.yaml", "static_resources: " + "[" * 10000 + "\n"),
                             located=True)
        self.assert_rejected(self.write("deep_maps.yaml", "a: " + "{b: " * 10000 + "\n"), located=True)

    def test_unknown_field_is_rejected_at_its_key(self):
        cfg = copy.deepcopy(self.good)
        cfg["static_resources"]["listeners"][0]["bogus_field"] = 1
        text = harness.to_yaml(cfg)
        self.assert_rejected(self.write("unknown.yaml", text), located=self.location_of(text, "bogus_field"),
                             message=r"unknown field 'bogus_field'")

    def test_wrong_type_url_is_rejected_at_it(self):
        cfg = copy.deepcopy(self.good)
        tcp_proxy_config(cfg)["@type"] = "type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo"
        text = harness.to_yaml(cfg)
        # Pointing at the key or at the value are both fine.
        where = [self.location_of(text, '"@type"'), self.location_of(text, '"type.googleapis')]
        self.assert_rejected(self.write("type.yaml", text), located=where, message=r"wrong @type")

    def test_out_of_range_port_is_rejected_at_it(self):
        cfg = copy.deepcopy(self.good)
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 70000
        text = harness.to_yaml(cfg)
        self.assert_rejected(self.write("port.yaml", text), located=self.location_of(text, "70000"),
                             message=r"out of range")

    def test_missing_cluster_reference_is_rejected_at_it(self):
        cfg = copy.deepcopy(self.good)
        tcp_proxy_config(cfg)["cluster"] = "no_such_cluster"
        text = harness.to_yaml(cfg)
        self.assert_rejected(self.write("cluster.yaml", text), located=self.location_of(text, '"no_such_cluster"'),
                             message=r"unknown cluster 'no_such_cluster'")

    def test_bad_config_in_serve_mode_exits_1_before_binding(self):
        cfg = copy.deepcopy(self.good)
        tcp_proxy_config(cfg)["cluster"] = "no_such_cluster"
        self.assert_rejected(self.write("serve.yaml", cfg), located=True, mode_args=())

    def test_max_config_bytes_flag_sets_the_limit(self):
        path = self.write("good.yaml", "# padding\n" * 200 + harness.to_yaml(self.good))
        size = os.path.getsize(path)
        self.assertGreater(size, 2048)
        self.assert_rejected(path, message=r"larger than the limit of 2048 bytes",
                             mode_args=("--mode", "validate", "--max-config-bytes", "2048"))
        p = self.run_bin("-c", path, "--mode", "validate", "--max-config-bytes", str(size))
        self.assertEqual((p.returncode, p.stdout), (EXIT_OK, "OK\n"), p.stderr)

    def test_missing_config_file_is_rejected(self):
        self.assert_rejected(os.path.join(self.dir, "does-not-exist.yaml"), message=r"cannot open config")

    # -- other commands and exit codes ---------------------------------------------------------

    def test_version_lists_boringssl(self):
        p = self.run_bin("version")
        self.assertEqual(p.returncode, EXIT_OK, p.stderr)
        self.assertRegex(p.stdout, r"^portcullis \S+")
        self.assertIn("BoringSSL", p.stdout)

    def test_usage_errors_exit_2(self):
        path = self.write("good.yaml", self.good)
        for args in (["--no-such-flag"], [], ["-c", path, "--mode", "bogus"], ["-c", path, "--concurrency", "0"],
                     ["-c", path, "-l", "loud"]):
            with self.subTest(args=args):
                p = self.run_bin(*args)
                self.assertEqual(p.returncode, EXIT_USAGE, p.stdout + p.stderr)

    def test_unopenable_log_path_exits_4(self):
        p = self.run_bin("-c", self.write("good.yaml", self.good), "--log-path", self.dir)  # a directory
        self.assertEqual(p.returncode, EXIT_LOGGING, p.stdout + p.stderr)

    def test_listener_port_in_use_exits_3(self):
        with socket.socket() as busy:
            busy.bind((harness.LOOPBACK, 0))
            busy.listen(1)
            cfg = copy.deepcopy(self.good)
            cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = busy.getsockname()[1]
            p = self.run_bin("-c", self.write("conflict.yaml", cfg), timeout=FAST)
        self.assertEqual(p.returncode, EXIT_STARTUP, p.stderr[-4000:])
        self.assertIn("cannot bind", p.stderr)

    def test_admin_port_in_use_exits_3(self):
        with socket.socket() as busy:
            busy.bind((harness.LOOPBACK, 0))
            busy.listen(1)
            cfg = copy.deepcopy(self.good)
            cfg["admin"]["address"]["socket_address"]["port_value"] = busy.getsockname()[1]
            p = self.run_bin("-c", self.write("admin_conflict.yaml", cfg), timeout=FAST)
        self.assertEqual(p.returncode, EXIT_STARTUP, p.stderr[-4000:])

    def test_init_only_binds_then_exits_0(self):
        p = self.run_bin("-c", self.write("good.yaml", self.good), "--mode", "init_only", timeout=FAST)
        self.assertEqual(p.returncode, EXIT_OK, p.stderr[-4000:])


class CommandLineOverridesTest(IntegrationTestCase):
    def test_log_path_receives_logs_and_sigusr1_reopens_it(self):
        logdir = tempfile.mkdtemp(prefix="portcullis-log-")
        self.addCleanup(shutil.rmtree, logdir, True)
        log = os.path.join(logdir, "portcullis.log")
        proxy = self.start_proxy(harness.simple_config([harness.closed_port()]), extra_args=["--log-path", log])

        def log_text(path):
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        harness.wait_until(lambda: "admin listening on" in log_text(log), 5, what="startup lines in the log file")
        self.assertNotIn("admin listening on", proxy.log(), "logs went to stderr despite --log-path")
        os.rename(log, log + ".1")  # what logrotate does
        proxy.signal(signal.SIGUSR1)
        harness.wait_until(lambda: os.path.exists(log), 5, what="SIGUSR1 to reopen the log path")
        # A rejected reload logs at error level, which is flushed at once.
        proxy.write_config("not: [valid")
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_failure", 1)
        harness.wait_until(lambda: "config reload rejected" in log_text(log), 5, what="new lines in the new file")
        self.assertNotIn("config reload rejected", log_text(log + ".1"))
        self.assertTrue(proxy.alive())

    def test_service_node_and_cluster_override_config(self):
        proxy = self.start_proxy(harness.simple_config([harness.closed_port()]),
                                 extra_args=["--service-node", "node-from-flag", "--service-cluster", "cl-flag"])
        import json
        info = json.loads(proxy.get("/server_info")[1])
        self.assertEqual(info["node"], {"id": "node-from-flag", "cluster": "cl-flag"})


if __name__ == "__main__":
    harness.main()
