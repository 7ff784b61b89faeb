#!/usr/bin/env python3
"""Helpers for bench/tcp_proxy_vs_haproxy.sh (standard library only).

Subcommands print "key<TAB>value" lines, which the harness appends to its raw
TSV (prefixed with rep and system), except where noted:

  iperf3   JSON_FILE PREFIX PROXY_TICKS      iperf3 -J result -> Gbit/s, GB per CPU-s
  wrk      FILE PREFIX PROXY_TICKS           wrk --latency output -> req/s, p50/p99, CPU us/req
  admin-port ADMIN_ADDRESS_FILE LISTENER TIMEOUT_S PID
                                             waits for portcullis' admin API and prints the
                                             listener's bound port (plain output, not TSV)
  http-check PORT                            GET / -> "<status> <body bytes>" (plain output)
  host-busy SECONDS                          whole-machine busy % over SECONDS (plain output)
  report   RESULTS_TSV [--md] [--meta FILE] [--systems a,b,c]

PROXY_TICKS are clock ticks (utime+stime+cutime+cstime from /proc/<pid>/stat,
summed over the proxy's process tree, read just before and just after the load
command) or "-" for the direct baseline.
"""
import json
import os
import re
import statistics
import sys
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")
# Never route the loopback requests through an http_proxy from the environment.
URLOPEN = urllib.request.build_opener(urllib.request.ProxyHandler({})).open


def emit(k, v):
    if v is None:
        return
    if isinstance(v, float):
        v = f"{v:.6g}"
    print(f"{k}\t{v}")


def ticks(s):
    return None if s in ("-", "") else int(s) / HZ


# ---------------------------------------------------------------------- iperf3
def cmd_iperf3(path, prefix, t_proxy):
    try:
        with open(path) as f:
            d = json.load(f)
    except Exception as e:  # iperf3 printed nothing or garbage
        emit(f"{prefix}_error", f"unparsable iperf3 output ({e.__class__.__name__})")
        return
    if d.get("error"):
        emit(f"{prefix}_error", d["error"].replace("\t", " "))
        return
    r = d["end"]["sum_received"]
    s = d["end"]["sum_sent"]
    emit(f"{prefix}_gbps", r["bits_per_second"] / 1e9)
    emit(f"{prefix}_bytes", r["bytes"])
    emit(f"{prefix}_retrans", s.get("retransmits"))
    cpu = ticks(t_proxy)
    if cpu is not None:
        emit(f"{prefix}_cpu_s", cpu)
        if cpu > 0:
            emit(f"{prefix}_gb_per_cpu_s", r["bytes"] / 1e9 / cpu)


# ------------------------------------------------------------------------- wrk
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(tok):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", tok)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def cmd_wrk(path, prefix, t_proxy):
    with open(path, errors="replace") as f:
        txt = f.read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    if not m:
        emit(f"{prefix}_error", "no wrk summary: " + txt.strip().replace("\n", " ")[:200])
        return
    emit(f"{prefix}_rps", float(m.group(1)))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", txt, re.M)
        if m:
            emit(f"{prefix}_p{pct}_ms", to_ms(m.group(1)))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", txt)
    nreq = int(m.group(1)) if m else 0
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    if m:
        errs += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    if m:
        errs += int(m.group(1))
    emit(f"{prefix}_errors", errs)
    cpu = ticks(t_proxy)
    if cpu is not None and nreq:
        emit(f"{prefix}_cpu_s", cpu)
        emit(f"{prefix}_cpu_us_per_req", cpu * 1e6 / nreq)


# ------------------------------------------------------------ portcullis admin
def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_admin_port(addr_file, listener, timeout_s, pid):
    """Wait until portcullis wrote its admin address and reports `listener` bound."""
    deadline = time.monotonic() + float(timeout_s)
    last = "admin address file not written"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            sys.exit(f"admin-port: portcullis (pid {pid}) exited; last state: {last}")
        try:
            with open(addr_file) as f:
                addr = f.read().strip()
            if addr:
                url = f"http://{addr}/listeners?format=json"
                with URLOPEN(url, timeout=2) as r:
                    d = json.load(r)
                for st in d.get("listener_statuses", []):
                    if st.get("name") == listener:
                        port = st["local_address"]["socket_address"]["port_value"]
                        if port:
                            print(port)
                            return
                last = f"listener '{listener}' not in {url}"
        except (OSError, ValueError, KeyError) as e:
            last = f"{e.__class__.__name__}: {e}"
        time.sleep(0.05)
    sys.exit(f"admin-port: timed out after {timeout_s}s; last state: {last}")


def cmd_http_check(port):
    try:
        with URLOPEN(f"http://127.0.0.1:{port}/", timeout=5) as r:
            body = r.read()
            print(f"{r.status} {len(body)}")
    except Exception as e:
        print(f"FAIL {e.__class__.__name__}")


def host_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]  # total, idle+iowait


def cmd_host_busy(secs):
    t0, i0 = host_cpu()
    time.sleep(float(secs))
    t1, i1 = host_cpu()
    print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0))))


# ---------------------------------------------------------------------- report
# (key, label, format[, flags]); key "a|b" renders "a / b"; key None starts a section.
# flags: "nospread" (no ± column), "ratio" (fill the "X ÷ haproxy" columns: ratio of medians).
ROWS = [
    (None, "bulk: iperf3 -t {bulk_t}s, client -> proxy -> iperf3 -s", None),
    ("bulk1_gbps", "1 stream: Gbit/s", "{:.2f}", "ratio"),
    ("bulk1_cpu_s", "  proxy CPU-s", "{:.2f}", "ratio"),
    ("bulk1_gb_per_cpu_s", "  **GB per proxy CPU-s**", "{:.2f}", "ratio"),
    ("bulk1_ksoftirqd_s", "  ksoftirqd CPU-s (not in the proxy's figure)", "{:.2f}"),
    ("bulk4_gbps", "-P 4: Gbit/s", "{:.2f}", "ratio"),
    ("bulk4_cpu_s", "  proxy CPU-s", "{:.2f}", "ratio"),
    ("bulk4_gb_per_cpu_s", "  **GB per proxy CPU-s**", "{:.2f}", "ratio"),
    ("bulk4_ksoftirqd_s", "  ksoftirqd CPU-s (not in the proxy's figure)", "{:.2f}"),
    (None, "latency: wrk -t1 --latency {wrk_t}s ({warm_t}s warm-up discarded), HTTP/1.1 keep-alive, 100 B body", None),
    ("lat1_rps", "c=1: req/s", "{:.0f}", "ratio"),
    ("lat1_p50_ms|lat1_p99_ms", "  p50 / p99 ms", "{:.3f}"),
    ("lat1_p50_add_ms|lat1_p99_add_ms", "  added vs direct p50 / p99 ms", "{:+.3f}"),
    ("lat1_cpu_us_per_req", "  proxy CPU us/req", "{:.1f}", "ratio"),
    ("lat50_rps", "c=50: req/s", "{:.0f}", "ratio"),
    ("lat50_p50_ms|lat50_p99_ms", "  p50 / p99 ms", "{:.3f}"),
    ("lat50_cpu_us_per_req", "  proxy CPU us/req", "{:.1f}", "ratio"),
    (None, "host CPU while each metric ran, % of the whole machine: busy / not ours / ksoftirqd (median; max of not ours)", None),
    ("host_bulk_busy|host_bulk_other|host_bulk_ksoftirqd", "bulk", "{:.0f}", "nospread"),
    ("host_bulk_other", "  bulk: max not ours", "{:.0f}", "nospread", "max"),
    ("host_latency_busy|host_latency_other|host_latency_ksoftirqd", "latency", "{:.0f}", "nospread"),
    ("host_latency_other", "  latency: max not ours", "{:.0f}", "nospread", "max"),
    (None, "checks (once per system)", None),
    ("chk_http", "GET / through the proxy", "{}"),
]


def load(path):
    data = {}  # (system, key) -> [values]
    order = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            _rep, system, key, val = parts
            if system not in order:
                order.append(system)
            data.setdefault((system, key), []).append(val)
    return data, order


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median_of(data, system, key):
    vals = [num(v) for v in data.get((system, key), [])]
    if not vals or any(v is None for v in vals):
        return None
    return statistics.median(vals)


def add_derived(data, systems):
    """c=1 latency added by a proxy: median(system) - median(direct)."""
    for q in ("p50", "p99"):
        base = median_of(data, "direct", f"lat1_{q}_ms")
        if base is None:
            continue
        for s in systems:
            v = median_of(data, s, f"lat1_{q}_ms")
            if s != "direct" and v is not None:
                data[(s, f"lat1_{q}_add_ms")] = [str(v - base)]


def agg(vals, fmt, spread=True, use_max=False):
    nums = [num(v) for v in vals]
    if fmt == "{}" or any(n is None for n in nums):
        out = []
        for v in vals:
            if v not in out:
                out.append(v)
        return ", ".join(out)
    if use_max:
        return fmt.format(max(nums))
    med = statistics.median(nums)
    s = fmt.format(med)
    if spread and len(nums) > 1 and med:
        s += f" ±{(max(nums) - min(nums)) / 2 / abs(med) * 100:.0f}%"
    return s


def cell(data, system, key, fmt, spread=True, use_max=False):
    keys = key.split("|")
    parts = [agg(data[(system, k)], fmt, spread, use_max) if (system, k) in data else None for k in keys]
    if all(p is None for p in parts):
        fam = keys[0].split("_")[0]
        errs = [1 for (s, k) in data if s == system and k.startswith(fam) and k.endswith("_error")]
        return "ERR" if errs else "-"
    return " / ".join(p if p is not None else "-" for p in parts)


def cmd_report(args):
    path = args[0]
    md = "--md" in args
    meta = {}
    if "--meta" in args:
        with open(args[args.index("--meta") + 1]) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                meta[k] = v
    data, order = load(path)
    systems = None
    if "--systems" in args:
        systems = [s for s in args[args.index("--systems") + 1].split(",") if s]
    systems = systems or order
    add_derived(data, systems)
    ratio_of = [s for s in systems if s not in ("direct", "haproxy")] if "haproxy" in systems else []
    header = ["metric"] + systems + [f"{s} ÷ haproxy" for s in ratio_of]
    rows = []
    for key, label, fmt, *flags in ROWS:
        if key is None:
            try:
                label = label.format(**meta)
            except KeyError:
                pass
            rows.append(("section", label))
            continue
        cells = [cell(data, s, key, fmt, "nospread" not in flags, "max" in flags) for s in systems]
        if all(c == "-" for c in cells):
            continue
        for s in ratio_of:
            r = "-"
            if "ratio" in flags:
                a, b = median_of(data, s, key), median_of(data, "haproxy", key)
                if a is not None and b:
                    r = f"{a / b:.2f}"
            cells.append(r)
        rows.append(("row", [label] + cells))
    kept = [r for i, r in enumerate(rows)
            if not (r[0] == "section" and (i + 1 == len(rows) or rows[i + 1][0] == "section"))]
    errors = sorted({(s, k, v) for (s, k), vs in data.items() for v in vs if k.endswith("_error")})
    errors += sorted({(s, k, v) for (s, k), vs in data.items() for v in vs
                      if k.endswith("_errors") and num(v) not in (None, 0.0)})
    ncol = len(header) - 1
    if md:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * ncol) + "|")
        for kind, r in kept:
            if kind == "section":
                print(f"| **{r}** |" + " |" * ncol)
            else:
                lab = "· " + r[0].lstrip() if r[0].startswith("  ") else r[0]
                print("| " + " | ".join(c.replace("|", "/") for c in [lab] + r[1:]) + " |")
    else:
        flat = [[c.replace("**", "") for c in r] for kind, r in kept if kind == "row"]
        w0 = max(len(header[0]), *(len(r[0]) for r in flat))
        ws = [max(len(header[i + 1]), *(len(r[i + 1]) for r in flat)) for i in range(ncol)]
        print(header[0].ljust(w0) + "".join(" | " + h.rjust(w) for h, w in zip(header[1:], ws)))
        print("-" * (w0 + sum(w + 3 for w in ws)))
        it = iter(flat)
        for kind, r in kept:
            if kind == "section":
                print(f"[{r}]")
            else:
                r = next(it)
                print(r[0].ljust(w0) + "".join(" | " + c.rjust(w) for c, w in zip(r[1:], ws)))
    if errors:
        print()
        print("errors:")
        for s, k, v in errors:
            print(f"  {s}: {k}: {v}")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd, rest = a[0], a[1:]
    cmds = {
        "iperf3": lambda: cmd_iperf3(*rest),
        "wrk": lambda: cmd_wrk(*rest),
        "admin-port": lambda: cmd_admin_port(*rest),
        "http-check": lambda: cmd_http_check(*rest),
        "host-busy": lambda: cmd_host_busy(*rest),
        "report": lambda: cmd_report(rest),
    }
    if cmd not in cmds:
        sys.exit(f"unknown subcommand {cmd}\n{__doc__}")
    cmds[cmd]()


if __name__ == "__main__":
    main()
