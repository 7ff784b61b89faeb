// Fuzzes the parsers of /proc text and cgroup paths used by kernel attestation. Cgroup names are
// partly chosen by users with a delegated subtree, and a process's comm (inside /proc/PID/stat)
// entirely, so neither may crash a parser or make it emit a malformed pod or container id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attest/kernel/cgroup_parser.h"
#include "attest/kernel/proc_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace portcullis::attest::kernel;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_stat_start_time(text);
  (void)parse_status_credentials(text);
  std::string v2 = parse_cgroup_v2_path(text);
  for (std::string_view path : {text, std::string_view(v2)}) {
    KubernetesCgroup k = parse_kubernetes_cgroup(path);
    bool pod_ok = k.pod_uid.empty() || k.pod_uid.size() == 32 || k.pod_uid.size() == 36;
    bool container_ok = k.container_id.empty() || (k.container_id.size() == 64 && !k.pod_uid.empty());
    if (!pod_ok || !container_ok) std::abort();
  }
  return 0;
}
