// Replays the /proc walk of attest/kernel/socket_owner.cc (SocketOwnerFinder::find with
// same_uid_only, when the socket's owner is not found early): every process whose /proc dir belongs
// to root or to UID, every link in its fd/ read with readlinkat. Prints the walk's CPU time (this
// thread's) and how much it read, REPS times, so the cost of a TCP peer lookup on this host can be
// read without a sidecar: RESULTS-attestation.md uses it.
//   gcc -O2 -o /tmp/proc_scan_cost bench/lib/proc_scan_cost.c && /tmp/proc_scan_cost 1001 9
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s UID REPS\n", argv[0]);
    return 2;
  }
  uid_t uid = (uid_t)atoi(argv[1]);
  for (int r = 0, reps = atoi(argv[2]); r < reps; r++) {
    double t0 = cpu_ms();
    long procs = 0, fds = 0;
    DIR* proc = opendir("/proc");
    if (!proc) return 1;
    for (struct dirent* e; (e = readdir(proc));) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      struct stat st;
      if (fstatat(dirfd(proc), e->d_name, &st, 0) != 0 || (st.st_uid != 0 && st.st_uid != uid)) continue;
      procs++;
      char path[300];
      snprintf(path, sizeof path, "%s/fd", e->d_name);
      int fd = openat(dirfd(proc), path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) continue;
      DIR* dir = fdopendir(fd);
      for (struct dirent* f; dir && (f = readdir(dir));) {
        if (f->d_name[0] == '.') continue;
        char target[64];
        (void)readlinkat(dirfd(dir), f->d_name, target, sizeof target);
        fds++;
      }
      if (dir) closedir(dir);
    }
    closedir(proc);
    printf("%.3f ms cpu, %ld processes, %ld fds\n", cpu_ms() - t0, procs, fds);
  }
  return 0;
}
