#include "attest/kernel/cgroup_parser.h"

#include <vector>

namespace portcullis::attest::kernel {
namespace {

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    if (end > pos) out.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !s.empty();
}

bool strip_prefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

bool strip_suffix(std::string_view& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.substr(s.size() - suffix.size()) != suffix) return false;
  s.remove_suffix(suffix.size());
  return true;
}

// pod_uid_of accepts a UUID (36 chars, dashes where a UUID has them) or a static pod's 32-hex
// config hash; systemd slice names carry the UUID's dashes as underscores.
std::string pod_uid_of(std::string_view raw) {
  std::string uid(raw);
  for (char& c : uid) {
    if (c == '_') c = '-';
  }
  if (uid.size() == 32 && is_hex(uid)) return uid;
  if (uid.size() != 36) return {};
  for (size_t i = 0; i < uid.size(); ++i) {
    bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_here ? uid[i] != '-' : !is_hex(std::string_view(&uid[i], 1))) return {};
  }
  return uid;
}

// pod_segment returns the pod uid if `seg` is a pod cgroup below a kubepods ancestor.
std::string pod_segment(std::string_view seg, bool under_kubepods) {
  if (!under_kubepods) return {};
  std::string_view s = seg;
  if (strip_suffix(s, ".slice")) {  // systemd driver: <...>kubepods-<qos>-pod<u_i_d>.slice
    size_t at = s.rfind("-pod");
    if (at == std::string_view::npos || s.find("kubepods") == std::string_view::npos) return {};
    return pod_uid_of(s.substr(at + 4));
  }
  if (strip_prefix(s, "pod")) return pod_uid_of(s);  // cgroupfs driver
  return {};
}

std::string container_segment(std::string_view seg) {
  std::string_view s = seg;
  bool scoped = strip_suffix(s, ".scope");
  if (!strip_prefix(s, "cri-containerd-") && !strip_prefix(s, "docker-") && !strip_prefix(s, "crio-") && scoped) {
    return {};  // a scope of some other unit (crio-conmon-<id>.scope falls here: "conmon-" is no hex)
  }
  if (s.size() != 64 || !is_hex(s)) return {};
  return std::string(s);
}

}  // namespace

KubernetesCgroup parse_kubernetes_cgroup(std::string_view path) {
  KubernetesCgroup out;
  auto segs = segments(path);
  bool under_kubepods = false;
  for (size_t i = 0; i < segs.size(); ++i) {
    std::string uid = pod_segment(segs[i], under_kubepods);
    if (!uid.empty()) {
      out.pod_uid = std::move(uid);
      if (i + 1 < segs.size()) out.container_id = container_segment(segs[i + 1]);
      return out;
    }
    if (segs[i].find("kubepods") != std::string_view::npos) under_kubepods = true;
  }
  return out;
}

}  // namespace portcullis::attest::kernel
