// A tiny workload for the attestation benchmarks (bench/svid_ready_latency.py,
// bench/revocation_fanout.py), compiled by them with gcc at run time. A C program rather than
// Python so that what the sidecar attests and hashes is small and the figures are not blurred by
// an interpreter: every time is taken inside the process, right before connect() and right after
// the answer arrived, so exec and process start are outside the measured intervals.
//
//   svid_workload tcp HOST PORT COUNT [hold]   COUNT sequential connections; each sends one byte
//                                               and waits for its echo
//   svid_workload wlapi PATH COUNT [hold]      COUNT sequential Workload API FetchX509SVID calls,
//                                               each on its own Unix connection, until the first
//                                               X509SVIDResponse message has fully arrived
//
// Output, one line per connection: `conn I start_us done_us elapsed_us bytes` (start/done are
// CLOCK_REALTIME µs, to line up with audit records; elapsed is CLOCK_MONOTONIC), then `pid P`.
// With `hold` the process then sleeps until killed, so its exit can be timed by the caller.
// Errors: a line `error ...` on stdout and exit status 1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char* what) {
  printf("error %s: %s\n", what, errno ? strerror(errno) : "protocol");
  exit(1);
}

static void read_full(int fd, unsigned char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("read");
    got += (size_t)r;
  }
}

static void write_full(int fd, const unsigned char* buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t w = write(fd, buf + put, n - put);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    put += (size_t)w;
  }
}

static size_t tcp_echo(const char* host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("address");
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) die("connect");
  unsigned char b = 'x';
  write_full(fd, &b, 1);
  read_full(fd, &b, 1);  // EOF here means the sidecar refused (unattested, no SVID)
  close(fd);
  return 1;
}

// --- a minimal HTTP/2 + gRPC client: literal HPACK fields, no Huffman, one stream ---------------

static size_t put_frame(unsigned char* out, int type, int flags, uint32_t stream, const unsigned char* p,
                        size_t n) {
  out[0] = (unsigned char)(n >> 16), out[1] = (unsigned char)(n >> 8), out[2] = (unsigned char)n;
  out[3] = (unsigned char)type, out[4] = (unsigned char)flags;
  out[5] = (unsigned char)(stream >> 24), out[6] = (unsigned char)(stream >> 16);
  out[7] = (unsigned char)(stream >> 8), out[8] = (unsigned char)stream;
  memcpy(out + 9, p, n);
  return 9 + n;
}

static size_t put_header(unsigned char* out, const char* name, const char* value) {
  size_t n = strlen(name), v = strlen(value), i = 0;  // all < 127: one-byte lengths
  out[i++] = 0x00;
  out[i++] = (unsigned char)n;
  memcpy(out + i, name, n), i += n;
  out[i++] = (unsigned char)v;
  memcpy(out + i, value, v), i += v;
  return i;
}

static size_t fetch_x509_svid(const char* path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) die("connect");

  unsigned char req[1024], hdr[512];
  size_t n = 0, h = 0;
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  memcpy(req, preface, sizeof preface - 1), n = sizeof preface - 1;
  n += put_frame(req + n, 4, 0, 0, NULL, 0);  // SETTINGS, defaults
  h += put_header(hdr + h, ":method", "POST");
  h += put_header(hdr + h, ":scheme", "http");
  h += put_header(hdr + h, ":path", "/SpiffeWorkloadAPI/FetchX509SVID");
  h += put_header(hdr + h, ":authority", "localhost");
  h += put_header(hdr + h, "content-type", "application/grpc");
  h += put_header(hdr + h, "te", "trailers");
  h += put_header(hdr + h, "workload.spiffe.io", "true");
  n += put_frame(req + n, 1, 0x4, 1, hdr, h);                                // HEADERS, END_HEADERS
  static const unsigned char empty_msg[5] = {0, 0, 0, 0, 0};                  // X509SVIDRequest{}
  n += put_frame(req + n, 0, 0x1, 1, empty_msg, sizeof empty_msg);           // DATA, END_STREAM
  write_full(fd, req, n);

  // Read frames until stream 1's first gRPC message is complete.
  static unsigned char buf[1 << 20];
  size_t have = 0, want = 0;
  int got_len = 0;
  for (;;) {
    unsigned char fh[9];
    read_full(fd, fh, 9);
    size_t len = ((size_t)fh[0] << 16) | ((size_t)fh[1] << 8) | fh[2];
    int type = fh[3], flags = fh[4];
    if (len > sizeof buf - have) die("frame too large");
    unsigned char* p = buf + have;
    read_full(fd, p, len);
    if (type == 4 && !(flags & 1)) {  // SETTINGS: acknowledge, as a real client would
      unsigned char ack[9];
      write_full(fd, ack, put_frame(ack, 4, 1, 0, NULL, 0));
    } else if (type == 1 && (flags & 1)) {  // HEADERS with END_STREAM before any message: an error status
      errno = 0;
      die("call ended without a message (trailers only)");
    } else if (type == 7 || type == 3) {
      errno = 0;
      die("GOAWAY/RST_STREAM");
    } else if (type == 0) {
      size_t off = 0;
      if (flags & 0x8) off = 1 + p[0], len -= off;  // PADDED
      memmove(buf + have, p + off, len);
      have += len;
      if (!got_len && have >= 5) want = 5 + (((size_t)buf[1] << 24) | ((size_t)buf[2] << 16) | ((size_t)buf[3] << 8) | buf[4]), got_len = 1;
      if (got_len && have >= want) break;
    }
  }
  close(fd);
  return want;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s tcp HOST PORT COUNT [hold] | wlapi PATH COUNT [hold]\n", argv[0]);
    return 2;
  }
  int tcp = strcmp(argv[1], "tcp") == 0;
  int count = atoi(argv[tcp ? 4 : 3]);
  int hold = argc > (tcp ? 5 : 4) && strcmp(argv[tcp ? 5 : 4], "hold") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 0; i < count; ++i) {
    int64_t start = now_us(CLOCK_REALTIME), m0 = now_us(CLOCK_MONOTONIC);
    size_t bytes = tcp ? tcp_echo(argv[2], atoi(argv[3])) : fetch_x509_svid(argv[2]);
    int64_t m1 = now_us(CLOCK_MONOTONIC), done = now_us(CLOCK_REALTIME);
    printf("conn %d %lld %lld %lld %zu\n", i, (long long)start, (long long)done, (long long)(m1 - m0), bytes);
  }
  printf("pid %d\n", (int)getpid());
  if (hold)
    for (;;) pause();
  return 0;
}
