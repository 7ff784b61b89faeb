#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace portcullis::attest::kernel {

// ProcessAttributes is what the kernel vouches for about one process, read from /proc while its
// pidfd showed it alive. Empty strings mean "unknown" and produce no selector. Immutable once
// built; shared between cache and callers.
struct ProcessAttributes {
  pid_t pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat field 22: with the PID, names the process uniquely
  uid_t uid = 0;            // effective
  gid_t gid = 0;            // effective
  std::vector<gid_t> supplementary_gids;
  std::string user, group;  // names of uid and gid; empty when the host has none
  std::string exe_path;     // readlink(/proc/PID/exe)
  std::string exe_sha256;   // lowercase hex of the file the process runs
  std::string cgroup_path;  // cgroup v2 path
  std::string pod_uid, container_id;
};

// selectors_of renders the attributes as "TYPE:KEY:VALUE" selectors (unix:uid, unix:gid,
// unix:user, unix:group, unix:supplementary_gid, unix:path, unix:sha256, cgroup:path,
// k8s:pod-uid, k8s:container-id), sorted and deduplicated.
std::vector<std::string> selectors_of(const ProcessAttributes& attributes);

// user_name_of / group_name_of resolve an id through NSS (getpwuid_r/getgrgid_r); empty when the
// id has no name or the lookup fails. Thread-safe; may block on a slow NSS backend.
std::string user_name_of(uid_t uid);
std::string group_name_of(gid_t gid);

}  // namespace portcullis::attest::kernel
