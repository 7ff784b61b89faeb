#include "attest/kernel/process_attributes.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace portcullis::attest::kernel {
namespace {

// lookup_name calls a *_r NSS function, growing its buffer on ERANGE up to a sane cap.
template <typename Entry, typename Fn>
std::string lookup_name(Fn fn, char* Entry::*name_field) {
  std::vector<char> buf(1024);
  while (buf.size() <= (1u << 20)) {
    Entry entry{};
    Entry* result = nullptr;
    int err = fn(&entry, buf.data(), buf.size(), &result);
    if (err == ERANGE) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (err != 0 || result == nullptr || result->*name_field == nullptr) return {};
    return result->*name_field;
  }
  return {};
}

}  // namespace

std::string user_name_of(uid_t uid) {
  return lookup_name<passwd>([uid](passwd* e, char* b, size_t n, passwd** r) { return ::getpwuid_r(uid, e, b, n, r); },
                             &passwd::pw_name);
}

std::string group_name_of(gid_t gid) {
  return lookup_name<group>([gid](group* e, char* b, size_t n, group** r) { return ::getgrgid_r(gid, e, b, n, r); },
                            &group::gr_name);
}

std::vector<std::string> selectors_of(const ProcessAttributes& a) {
  std::vector<std::string> out;
  out.push_back("unix:uid:" + std::to_string(a.uid));
  out.push_back("unix:gid:" + std::to_string(a.gid));
  if (!a.user.empty()) out.push_back("unix:user:" + a.user);
  if (!a.group.empty()) out.push_back("unix:group:" + a.group);
  for (gid_t g : a.supplementary_gids) out.push_back("unix:supplementary_gid:" + std::to_string(g));
  if (!a.exe_path.empty()) out.push_back("unix:path:" + a.exe_path);
  if (!a.exe_sha256.empty()) out.push_back("unix:sha256:" + a.exe_sha256);
  if (!a.cgroup_path.empty()) out.push_back("cgroup:path:" + a.cgroup_path);
  if (!a.pod_uid.empty()) out.push_back("k8s:pod-uid:" + a.pod_uid);
  if (!a.container_id.empty()) out.push_back("k8s:container-id:" + a.container_id);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace portcullis::attest::kernel
