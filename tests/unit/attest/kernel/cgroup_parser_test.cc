// Kubernetes pod and container ids from cgroup paths as kubelet, containerd, cri-o and docker
// lay them out on real nodes.
#include "attest/kernel/cgroup_parser.h"

#include <gtest/gtest.h>

namespace portcullis::attest::kernel {
namespace {

constexpr const char* kCid = "3f0c3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";
constexpr const char* kUid = "8a1a3f6e-2c9b-4b55-9d3b-7b1e0c9f4a21";
constexpr const char* kUnderscoredUid = "8a1a3f6e_2c9b_4b55_9d3b_7b1e0c9f4a21";

std::string s(std::initializer_list<std::string> parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

struct Case {
  std::string path;
  KubernetesCgroup want;
};

TEST(CgroupParser, RealWorldPaths) {
  const std::string cid = kCid, uid = kUid, u_uid = kUnderscoredUid;
  const Case cases[] = {
      // containerd, systemd driver (EKS, GKE COS, kubeadm defaults)
      {s({"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod", u_uid, ".slice/cri-containerd-", cid, ".scope"}), {uid, cid}},
      // guaranteed QoS has no QoS slice
      {s({"/kubepods.slice/kubepods-pod", u_uid, ".slice/cri-containerd-", cid, ".scope"}), {uid, cid}},
      // docker shim, systemd driver
      {s({"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod", u_uid, ".slice/docker-", cid, ".scope"}), {uid, cid}},
      // cri-o
      {s({"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod", u_uid, ".slice/crio-", cid, ".scope"}), {uid, cid}},
      // cri-o's conmon runs in the pod but is not the container
      {s({"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod", u_uid, ".slice/crio-conmon-", cid, ".scope"}), {uid, ""}},
      // cgroupfs driver (older clusters, cgroup v1 hierarchies)
      {s({"/kubepods/burstable/pod", uid, "/", cid}), {uid, cid}},
      {s({"/kubepods/pod", uid, "/", cid}), {uid, cid}},
      // kind nodes nest the kubelet's hierarchy
      {s({"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod", u_uid,
          ".slice/cri-containerd-", cid, ".scope"}),
       {uid, cid}},
      // the pod's own cgroup (a process of the pause sandbox or a pod-level cgroup)
      {s({"/kubepods/besteffort/pod", uid}), {uid, ""}},
      // cgroups the container made below its own: the container is still the one under the pod
      {s({"/kubepods.slice/kubepods-pod", u_uid, ".slice/cri-containerd-", cid, ".scope/init.scope"}), {uid, cid}},
      // static pods' uid is the 32-hex config hash
      {s({"/kubepods/burstable/pod8bc4d3a0ab5e1d4a3c2f9e8d7b6a5c4e/", cid}), {"8bc4d3a0ab5e1d4a3c2f9e8d7b6a5c4e", cid}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parse_kubernetes_cgroup(c.path), c.want) << c.path;
  }
}

TEST(CgroupParser, NotKubernetesOrMalformedGivesNothing) {
  const std::string cid = kCid, uid = kUid;
  const std::string paths[] = {
      "",
      "/",
      "/user.slice/user-1000.slice/session-3.scope",
      "/system.slice/containerd.service",
      s({"/system.slice/docker-", cid, ".scope"}),                   // docker without Kubernetes
      s({"/machine.slice/pod", uid, "/", cid}),                      // "pod" not under kubepods
      s({"/kubepods/burstable/podNOT-A-UID/", cid}),                 // malformed uid
      s({"/kubepods/burstable/pod", uid, "0/", cid}),                // uid one char too long
      s({"/kubepods.slice/kubepods-burstable-pod", kUnderscoredUid, ".scope"}),  // a scope is no pod slice
  };
  for (const auto& p : paths) {
    EXPECT_EQ(parse_kubernetes_cgroup(p), KubernetesCgroup{}) << p;
  }
}

TEST(CgroupParser, ContainerIdMustBeExactly64LowercaseHex) {
  const std::string uid = kUid;
  std::string upper = kCid;
  upper[0] = 'F';
  EXPECT_EQ(parse_kubernetes_cgroup(s({"/kubepods/pod", uid, "/", upper})).container_id, "");
  EXPECT_EQ(parse_kubernetes_cgroup(s({"/kubepods/pod", uid, "/", std::string(kCid).substr(1)})).container_id, "");
  EXPECT_EQ(parse_kubernetes_cgroup(s({"/kubepods/pod", uid, "/cri-containerd-", kCid, "x.scope"})).container_id, "");
  EXPECT_EQ(parse_kubernetes_cgroup(s({"/kubepods/pod", uid, "/other-", kCid, ".scope"})).container_id, "");
  EXPECT_EQ(parse_kubernetes_cgroup(s({"/kubepods/pod", uid, "/", kCid})).pod_uid, uid);
}

}  // namespace
}  // namespace portcullis::attest::kernel
