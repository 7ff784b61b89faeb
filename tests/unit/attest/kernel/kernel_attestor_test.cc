// KernelAttestor against real processes running under other uids (setpriv + Debian's python3):
// Unix and TCP peers, listeners, executable hashing, PID reuse and the process cache.
#include "attest/kernel/kernel_attestor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/digest.h"
#include "test_process.h"

namespace portcullis::attest::kernel {
namespace {

using namespace std::chrono_literals;

#define REQUIRE_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: runs workloads under other uids with setpriv"

constexpr const char* kSleep = "print('ok', flush=True)\nimport time\ntime.sleep(60)";
constexpr const char* kUnixConnect =
    "import socket, sys, time\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('ok', flush=True)\n"
    "time.sleep(60)";
constexpr const char* kUnixConnectThenSetuid =
    "import os, socket, sys, time\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
    "os.setgroups([])\nos.setresgid(1234, 1234, 1234)\nos.setresuid(1234, 1234, 1234)\nprint('ok', flush=True)\n"
    "time.sleep(60)";
constexpr const char* kTcpConnect =
    "import socket, sys, time\ns = socket.create_connection((sys.argv[1], int(sys.argv[2])))\nprint('ok', flush=True)\n"
    "time.sleep(60)";
constexpr const char* kTcpListen =
    "import socket, sys, time\nv6 = ':' in sys.argv[1]\ns = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)\n"
    "if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\ns.bind((sys.argv[1], 0))\ns.listen()\n"
    "print(s.getsockname()[1], flush=True)\ntime.sleep(60)";

bool has(const std::vector<std::string>& selectors, const std::string& s) {
  return std::find(selectors.begin(), selectors.end(), s) != selectors.end();
}

bool has_prefix(const std::vector<std::string>& selectors, const std::string& prefix) {
  return std::any_of(selectors.begin(), selectors.end(), [&](const auto& s) { return s.rfind(prefix, 0) == 0; });
}

std::string file_sha256(const std::string& path) { return sha256_hex(testing::read_file_bytes(path)); }

sockaddr_storage ip(const char* host, uint16_t port) {
  sockaddr_storage ss{};
  if (std::string_view(host).find(':') != std::string_view::npos) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    ::inet_pton(AF_INET6, host, &in6.sin6_addr);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    ::inet_pton(AF_INET, host, &in.sin_addr);
  }
  return ss;
}

uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                       : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

// accept_within waits for one connection on `listener`.
UniqueFd accept_within(int listener, std::chrono::milliseconds timeout = 10s) {
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return UniqueFd();
  return UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

// TempDir is a directory other uids can enter, removed with its files at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/kernel_attest.XXXXXX";
    path = ::mkdtemp(tmpl);
    ::chmod(path.c_str(), 0755);
  }
  ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf " + path).c_str()); }
};

class KernelAttestorTest : public ::testing::Test {
 protected:
  std::unique_ptr<KernelAttestor> make(KernelAttestorOptions options = {}) {
    auto a = KernelAttestor::create(std::move(options), stats_);
    EXPECT_TRUE(a.ok());
    return a.ok() ? std::move(*a) : nullptr;
  }
  int64_t stat(const std::string& leaf) { return stats_.value("workload_attestation.kernel." + leaf).value_or(-1); }

  // a python workload under `uid` that connected to a Unix socket we accepted.
  struct UnixPeer {
    std::unique_ptr<testing::TestProcess> process;
    UniqueFd connection;
  };
  UnixPeer unix_peer(const TempDir& dir, const char* script, std::vector<std::string> command_prefix) {
    std::string path = dir.path + "/s.sock";
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::chmod(path.c_str(), 0777);
    EXPECT_EQ(::listen(listener.get(), 4), 0);
    auto argv = command_prefix;
    for (auto& a : testing::python(script, {path})) argv.push_back(a);
    UnixPeer out;
    out.process = testing::TestProcess::spawn(argv);
    out.connection = accept_within(listener.get());
    EXPECT_EQ(out.process->read_line(), "ok");
    return out;
  }

  StatsStore stats_;
};

TEST_F(KernelAttestorTest, SocketpairPeerIsThisProcess) {
  auto attestor = make();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  auto att = attestor->attest_unix_peer(a.get());
  ASSERT_TRUE(att.ok()) << att.error().message;
  EXPECT_EQ(att->attributes->pid, ::getpid());
  EXPECT_EQ(att->attributes->uid, ::geteuid());
  std::string exe = testing::real_path("/proc/self/exe");
  EXPECT_TRUE(has(att->selectors, "unix:uid:" + std::to_string(::geteuid())));
  EXPECT_TRUE(has(att->selectors, "unix:path:" + exe));
  EXPECT_TRUE(has(att->selectors, "unix:sha256:" + file_sha256(exe)));
  EXPECT_TRUE(std::is_sorted(att->selectors.begin(), att->selectors.end()));
  EXPECT_EQ(stat("lookups_unix_peer"), 1);
  EXPECT_EQ(stat("exe_hash_computations"), 1);
}

TEST_F(KernelAttestorTest, ExecutableAboveTheLimitGetsNoHashSelector) {
  KernelAttestorOptions options;
  options.max_exe_hash_bytes = 1000;
  auto attestor = make(options);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  auto att = attestor->attest_unix_peer(a.get());
  ASSERT_TRUE(att.ok()) << att.error().message;
  EXPECT_FALSE(has_prefix(att->selectors, "unix:sha256:"));
  EXPECT_TRUE(has_prefix(att->selectors, "unix:path:"));
  EXPECT_EQ(stat("exe_hash_too_large"), 1);
}

TEST_F(KernelAttestorTest, UnixPeerUnderAnotherUid) {
  REQUIRE_ROOT();
  auto attestor = make();
  TempDir dir;
  auto peer = unix_peer(dir, kUnixConnect, testing::as_uid(1234, {}));
  ASSERT_TRUE(peer.connection.valid());
  auto att = attestor->attest_unix_peer(peer.connection.get());
  ASSERT_TRUE(att.ok()) << att.error().message;
  std::string python = testing::real_path(testing::kPython);
  EXPECT_EQ(att->attributes->pid, peer.process->pid());
  EXPECT_TRUE(has(att->selectors, "unix:uid:1234"));
  EXPECT_TRUE(has(att->selectors, "unix:gid:1234"));
  EXPECT_TRUE(has(att->selectors, "unix:path:" + python));
  EXPECT_TRUE(has(att->selectors, "unix:sha256:" + file_sha256(python)));
  EXPECT_FALSE(has_prefix(att->selectors, "unix:supplementary_gid:")) << "setpriv --clear-groups";
  EXPECT_FALSE(has(att->selectors, "unix:uid:0"));
  // The attestation holds a pidfd of that very process.
  auto pid = pid_of_pidfd(att->pidfd->get());
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(*pid, peer.process->pid());
  // A second look at the same process is a cache hit with the same attributes.
  auto again = attestor->attest_unix_peer(peer.connection.get());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->attributes, att->attributes);
  EXPECT_EQ(stat("cache_hits"), 1);
  EXPECT_EQ(stat("exe_hash_computations"), 1);
}

TEST_F(KernelAttestorTest, UnixPeerThatExitedIsRefused) {
  REQUIRE_ROOT();
  auto attestor = make();
  TempDir dir;
  auto peer = unix_peer(dir, kUnixConnect, testing::as_uid(1234, {}));
  ASSERT_TRUE(peer.connection.valid());
  ::kill(peer.process->pid(), SIGKILL);  // a zombie first: its pidfd already reads as exited
  std::this_thread::sleep_for(20ms);
  auto zombie = attestor->attest_unix_peer(peer.connection.get());
  ASSERT_FALSE(zombie.ok());
  EXPECT_EQ(zombie.error().code, ErrorCode::kNotFound) << zombie.error().message;
  peer.process->kill_and_reap();  // then reaped: the PID is free for anyone
  auto reaped = attestor->attest_unix_peer(peer.connection.get());
  ASSERT_FALSE(reaped.ok());
  EXPECT_EQ(reaped.error().code, ErrorCode::kNotFound) << reaped.error().message;
  EXPECT_EQ(stat("failures_process_exited"), 2);
  EXPECT_EQ(attestor->cached_processes(), 0u);
}

TEST_F(KernelAttestorTest, HolderThatChangedUidSinceConnectingIsRefused) {
  REQUIRE_ROOT();
  TempDir dir;
  auto peer = unix_peer(dir, kUnixConnectThenSetuid, {});  // connects as root, then becomes 1234
  ASSERT_TRUE(peer.connection.valid());
  auto attestor = make();
  auto att = attestor->attest_unix_peer(peer.connection.get());
  ASSERT_FALSE(att.ok());
  EXPECT_EQ(att.error().code, ErrorCode::kPermissionDenied) << att.error().message;
  EXPECT_EQ(stat("failures_credentials_changed"), 1);

  KernelAttestorOptions lax;
  lax.require_socket_uid_match = false;
  StatsStore other_stats;
  auto lax_attestor = KernelAttestor::create(lax, other_stats);
  ASSERT_TRUE(lax_attestor.ok());
  auto lax_att = (*lax_attestor)->attest_unix_peer(peer.connection.get());
  ASSERT_TRUE(lax_att.ok()) << lax_att.error().message;
  EXPECT_TRUE(has(lax_att->selectors, "unix:uid:1234"));
}

// The gRPC servers hand over SO_PEERPIDFD and SO_PEERCRED of the connection; the pidfd alone would
// let a process that changed uid after connecting (a setuid exec) lend the socket its new identity.
TEST_F(KernelAttestorTest, PeerPidfdWithTheSocketUidRefusesAHolderThatChangedUid) {
  REQUIRE_ROOT();
  TempDir dir;
  auto peer = unix_peer(dir, kUnixConnectThenSetuid, {});  // connects as root, then becomes 1234
  ASSERT_TRUE(peer.connection.valid());
  ucred cred{};
  socklen_t len = sizeof cred;
  ASSERT_EQ(::getsockopt(peer.connection.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
  ASSERT_EQ(cred.uid, 0u);
  auto pidfd = pidfd_open_pid(cred.pid);
  ASSERT_TRUE(pidfd.ok()) << pidfd.error().message;
  auto attestor = make();
  auto att = attestor->attest_pidfd(pidfd->get(), cred.uid);
  ASSERT_FALSE(att.ok());
  EXPECT_EQ(att.error().code, ErrorCode::kPermissionDenied) << att.error().message;
  EXPECT_EQ(stat("failures_credentials_changed"), 1);
  auto same = attestor->attest_pidfd(pidfd->get(), uid_t{1234});
  ASSERT_TRUE(same.ok()) << same.error().message;
  EXPECT_TRUE(has(same->selectors, "unix:uid:1234"));
}

class TcpPeerTest : public KernelAttestorTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(TcpPeerTest, LoopbackPeerViaSockDiag) {
  REQUIRE_ROOT();
  const char* host = GetParam();
  sockaddr_storage bind_addr = ip(host, 0);
  UniqueFd listener(::socket(bind_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  socklen_t len = bind_addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&bind_addr), len) != 0) {
    GTEST_SKIP() << host << " is not usable here";
  }
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  sockaddr_storage listen_addr{};
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&listen_addr), &len), 0);
  auto child = testing::TestProcess::spawn(
      testing::as_uid(1234, testing::python(kTcpConnect, {host, std::to_string(port_of(listen_addr))})));
  UniqueFd conn = accept_within(listener.get());
  ASSERT_TRUE(conn.valid());
  ASSERT_EQ(child->read_line(), "ok");
  sockaddr_storage local{}, remote{};
  socklen_t l1 = sizeof(local), l2 = sizeof(remote);
  ASSERT_EQ(::getsockname(conn.get(), reinterpret_cast<sockaddr*>(&local), &l1), 0);
  ASSERT_EQ(::getpeername(conn.get(), reinterpret_cast<sockaddr*>(&remote), &l2), 0);

  auto attestor = make();
  auto att = attestor->attest_tcp_peer(local, remote);
  ASSERT_TRUE(att.ok()) << att.error().message;
  EXPECT_EQ(att->attributes->pid, child->pid());
  EXPECT_TRUE(has(att->selectors, "unix:uid:1234"));
  EXPECT_TRUE(has(att->selectors, "unix:sha256:" + file_sha256(testing::real_path(testing::kPython))));
  EXPECT_EQ(stat("lookups_tcp_peer"), 1);
  EXPECT_EQ(stat("proc_scans"), 1);

  // The connection's other direction is our own accepted socket, not the workload.
  auto ours = attestor->attest_tcp_peer(remote, local);
  ASSERT_TRUE(ours.ok()) << ours.error().message;
  EXPECT_EQ(ours->attributes->pid, ::getpid());

  // A 4-tuple nobody has is an error, counted.
  sockaddr_storage nobody = remote;
  reinterpret_cast<sockaddr_in&>(nobody).sin_port = htons(port_of(remote) == 1 ? 2 : 1);  // same offset in sockaddr_in6
  auto none = attestor->attest_tcp_peer(local, nobody);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound) << none.error().message;
  EXPECT_EQ(stat("failures_no_socket"), 1);
}

INSTANTIATE_TEST_SUITE_P(Loopback, TcpPeerTest, ::testing::Values("127.0.0.1", "::1"),
                         [](const auto& info) { return std::string(info.index == 0 ? "Ipv4" : "Ipv6"); });

TEST_F(KernelAttestorTest, ScanLimitsBoundTheOwnerSearch) {
  REQUIRE_ROOT();
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage addr = ip("127.0.0.1", 0);
  socklen_t len = sizeof(sockaddr_in);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  // A decoy of the same uid with a lower PID: the scan reads the socket's uid's processes first,
  // so it is the one process the budget allows.
  auto decoy = testing::TestProcess::spawn(testing::as_uid(1234, testing::python(kSleep)));
  ASSERT_EQ(decoy->read_line(), "ok");
  auto child = testing::TestProcess::spawn(
      testing::as_uid(1234, testing::python(kTcpConnect, {"127.0.0.1", std::to_string(port_of(addr))})));
  UniqueFd conn = accept_within(listener.get());
  ASSERT_TRUE(conn.valid());
  ASSERT_EQ(child->read_line(), "ok");
  sockaddr_storage local{}, remote{};
  socklen_t l1 = sizeof(local), l2 = sizeof(remote);
  ::getsockname(conn.get(), reinterpret_cast<sockaddr*>(&local), &l1);
  ::getpeername(conn.get(), reinterpret_cast<sockaddr*>(&remote), &l2);
  KernelAttestorOptions options;
  options.max_proc_scan = 1;
  auto attestor = make(options);
  auto att = attestor->attest_tcp_peer(local, remote);
  ASSERT_FALSE(att.ok());
  EXPECT_EQ(att.error().code, ErrorCode::kResourceExhausted) << att.error().message;
  EXPECT_EQ(stat("failures_scan_limit"), 1);
}

struct ListenerCase {
  const char* bind_host;
  const char* ask_host;
};

class TcpListenerTest : public KernelAttestorTest, public ::testing::WithParamInterface<ListenerCase> {};

TEST_P(TcpListenerTest, FindsTheListeningProcess) {
  REQUIRE_ROOT();
  auto [bind_host, ask_host] = GetParam();
  auto child = testing::TestProcess::spawn(testing::as_uid(1234, testing::python(kTcpListen, {bind_host})));
  std::string port = child->read_line();
  if (port.empty()) GTEST_SKIP() << "cannot listen on " << bind_host << " here";
  auto attestor = make();
  auto att = attestor->attest_tcp_listener(ip(ask_host, static_cast<uint16_t>(std::stoi(port))));
  ASSERT_TRUE(att.ok()) << att.error().message;
  EXPECT_EQ(att->attributes->pid, child->pid());
  EXPECT_TRUE(has(att->selectors, "unix:uid:1234"));
  // The listener's inode stays cached: the second lookup needs no /proc scan.
  ASSERT_TRUE(attestor->attest_tcp_listener(ip(ask_host, static_cast<uint16_t>(std::stoi(port)))).ok());
  EXPECT_EQ(stat("proc_scans"), 1);
  EXPECT_EQ(stat("inode_cache_hits"), 1);
  // Nobody listens one port below (practically never in use by a listener; checked by the error).
  child->kill_and_reap();
  auto gone = attestor->attest_tcp_listener(ip(ask_host, static_cast<uint16_t>(std::stoi(port))));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << gone.error().message;
}

std::string listener_case_name(const ::testing::TestParamInfo<ListenerCase>& info) {
  static const char* const kNames[] = {"Exact", "Ipv4Wildcard", "DualStackWildcard", "Ipv6Exact"};
  return kNames[info.index];
}

INSTANTIATE_TEST_SUITE_P(Binds, TcpListenerTest,
                         ::testing::Values(ListenerCase{"127.0.0.1", "127.0.0.1"}, ListenerCase{"0.0.0.0", "127.0.0.1"},
                                           ListenerCase{"::", "127.0.0.1"}, ListenerCase{"::1", "::1"}),
                         listener_case_name);

TEST_F(KernelAttestorTest, ExeHashFollowsTheFileContentsNotThePath) {
  REQUIRE_ROOT();
  TempDir dir;
  std::string exe = dir.path + "/workload";
  auto write_exe = [&](const std::string& from) {
    std::string bytes = testing::read_file_bytes(from);
    int fd = ::open(exe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);  // same inode on rewrite
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  };
  std::string python = testing::real_path(testing::kPython);
  write_exe(python);
  auto attestor = make();
  auto first = testing::TestProcess::spawn(testing::as_uid(1234, {exe, "-c", kSleep}));
  ASSERT_EQ(first->read_line(), "ok");
  auto a = attestor->attest_pidfd(first->pidfd());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(has(a->selectors, "unix:path:" + exe));
  EXPECT_TRUE(has(a->selectors, "unix:sha256:" + file_sha256(python)));
  first->kill_and_reap();

  write_exe("/usr/bin/sleep");  // replaced in place: same path, same inode, other contents
  auto second = testing::TestProcess::spawn(testing::as_uid(1234, {exe, "60"}));
  ASSERT_TRUE(second->wait_for_exe(exe));
  auto b = attestor->attest_pidfd(second->pidfd());
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_TRUE(has(b->selectors, "unix:path:" + exe));
  EXPECT_TRUE(has(b->selectors, "unix:sha256:" + file_sha256("/usr/bin/sleep")));
  EXPECT_FALSE(has(b->selectors, "unix:sha256:" + file_sha256(python)));
  EXPECT_EQ(stat("exe_hash_computations"), 2);
}

TEST_F(KernelAttestorTest, StartTimeMismatchIsDetected) {
  auto child = testing::TestProcess::spawn({"/usr/bin/sleep", "60"});
  ASSERT_TRUE(child);
  auto dir = ProcDir::open(child->pid());
  ASSERT_TRUE(dir.ok());
  auto start = dir->start_time();
  ASSERT_TRUE(start.ok());
  auto right = KernelAttestor::open_pidfd_at_start_time(child->pid(), *start);
  ASSERT_TRUE(right.ok()) << right.error().message;
  auto wrong = KernelAttestor::open_pidfd_at_start_time(child->pid(), *start + 1);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(wrong.error().message.find("start time mismatch"), std::string::npos) << wrong.error().message;
  child->kill_and_reap();
  auto gone = KernelAttestor::open_pidfd_at_start_time(child->pid(), *start);
  EXPECT_FALSE(gone.ok());
}

// spawn_at_pid makes the next PID `pid` through ns_last_pid and retries when another process of
// the host wins the race; nullptr when it never works.
std::unique_ptr<testing::TestProcess> spawn_at_pid(pid_t pid, const std::vector<std::string>& argv) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    std::string last = std::to_string(pid - 1);
    bool wrote = ::write(fd, last.data(), last.size()) == static_cast<ssize_t>(last.size());
    ::close(fd);
    if (!wrote) return nullptr;
    auto p = testing::TestProcess::spawn(argv);
    if (p && p->pid() == pid) return p;
  }
  return nullptr;
}

TEST_F(KernelAttestorTest, RecycledPidNeverInheritsAnIdentity) {
  REQUIRE_ROOT();
  auto attestor = make();
  auto original = testing::TestProcess::spawn(testing::as_uid(1234, testing::python(kSleep)));
  ASSERT_EQ(original->read_line(), "ok");
  auto stale_pidfd = dup_pidfd(original->pidfd());
  ASSERT_TRUE(stale_pidfd.ok());
  auto a = attestor->attest_pidfd(stale_pidfd->get());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(has(a->selectors, "unix:uid:1234"));
  pid_t pid = original->pid();
  original->kill_and_reap();

  auto dead = attestor->attest_pidfd(stale_pidfd->get());
  ASSERT_FALSE(dead.ok());
  EXPECT_EQ(dead.error().code, ErrorCode::kNotFound) << dead.error().message;
  EXPECT_EQ(stat("failures_process_exited"), 1);
  EXPECT_FALSE(pidfd_alive(a->pidfd->get()));

  auto reused = spawn_at_pid(pid, testing::as_uid(4321, testing::python(kSleep)));
  if (!reused) GTEST_SKIP() << "could not force PID " << pid << " to be reused (ns_last_pid not writable or always raced)";
  ASSERT_EQ(reused->read_line(), "ok");
  // The stale pidfd still names the dead process, even though its PID is alive again.
  auto still_dead = attestor->attest_pidfd(stale_pidfd->get());
  ASSERT_FALSE(still_dead.ok());
  EXPECT_EQ(still_dead.error().code, ErrorCode::kNotFound);
  // The new holder of the PID is attested as itself.
  auto b = attestor->attest_pidfd(reused->pidfd());
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->attributes->pid, pid);
  EXPECT_NE(b->attributes->start_time, a->attributes->start_time);
  EXPECT_TRUE(has(b->selectors, "unix:uid:4321"));
  EXPECT_FALSE(has(b->selectors, "unix:uid:1234"));
  EXPECT_EQ(stat("cache_hits"), 0);
}

TEST_F(KernelAttestorTest, NotAPidfdIsAnInputError) {
  auto attestor = make();
  UniqueFd not_pidfd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto att = attestor->attest_pidfd(not_pidfd.get());
  ASSERT_FALSE(att.ok());
  EXPECT_EQ(att.error().code, ErrorCode::kInvalidArgument) << att.error().message;
  EXPECT_FALSE(attestor->attest_pidfd(-1).ok());
  EXPECT_EQ(stat("failures_invalid_input"), 2);
  EXPECT_FALSE(attestor->attest_unix_peer(not_pidfd.get()).ok());  // not a socket
}

}  // namespace
}  // namespace portcullis::attest::kernel
