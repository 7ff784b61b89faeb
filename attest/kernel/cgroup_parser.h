#pragma once

#include <string>
#include <string_view>

namespace portcullis::attest::kernel {

// KubernetesCgroup is what a kubelet-made cgroup path says about the process: its pod and
// container. Both empty when the path is not under a kubepods hierarchy.
struct KubernetesCgroup {
  std::string pod_uid;       // dashed form, as in the API server (systemd's underscores undone)
  std::string container_id;  // 64 lowercase hex; empty for the pod's own cgroup or an unknown runtime

  bool operator==(const KubernetesCgroup&) const = default;
};

// parse_kubernetes_cgroup reads a cgroup v2 path (or a v1 one) as the kubelet lays it out, with
// either cgroup driver:
//   systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<u_i_d>.slice/cri-containerd-<id>.scope
//             (also docker-<id>.scope and crio-<id>.scope; kind's kubelet-kubepods-... prefix)
//   cgroupfs: /kubepods/burstable/pod<uid>/<id>
// The container is the cgroup directly below the pod's; crio's conmon-<id> scopes are not a
// container. Anything malformed yields empty fields, never a guess: a selector is only emitted
// for a value that parsed exactly. Pure; thread-safe.
KubernetesCgroup parse_kubernetes_cgroup(std::string_view path);

}  // namespace portcullis::attest::kernel
