// Selector rendering: every attribute, sorted and deduplicated, nothing for unknown values.
#include "attest/kernel/process_attributes.h"

#include <gtest/gtest.h>

namespace portcullis::attest::kernel {
namespace {

TEST(ProcessAttributes, SelectorsAreSortedDedupedAndSkipUnknowns) {
  ProcessAttributes a;
  a.uid = 1234;
  a.gid = 1234;
  a.supplementary_gids = {27, 4, 27};
  a.user = "app";
  a.exe_path = "/usr/bin/python3.11";
  a.exe_sha256 = "ab12";
  a.cgroup_path = "/kubepods/pod1/c";
  a.pod_uid = "8a1a3f6e-2c9b-4b55-9d3b-7b1e0c9f4a21";
  a.container_id = "ff";
  EXPECT_EQ(selectors_of(a), (std::vector<std::string>{
                                 "cgroup:path:/kubepods/pod1/c",
                                 "k8s:container-id:ff",
                                 "k8s:pod-uid:8a1a3f6e-2c9b-4b55-9d3b-7b1e0c9f4a21",
                                 "unix:gid:1234",
                                 "unix:path:/usr/bin/python3.11",
                                 "unix:sha256:ab12",
                                 "unix:supplementary_gid:27",
                                 "unix:supplementary_gid:4",
                                 "unix:uid:1234",
                                 "unix:user:app",
                             }));
  ProcessAttributes bare;
  EXPECT_EQ(selectors_of(bare), (std::vector<std::string>{"unix:gid:0", "unix:uid:0"}));
}

TEST(ProcessAttributes, NamesComeFromNss) {
  EXPECT_EQ(user_name_of(0), "root");
  EXPECT_EQ(group_name_of(0), "root");
  EXPECT_EQ(user_name_of(4294967294u - 12345), "");  // no such user on any sane host
}

}  // namespace
}  // namespace portcullis::attest::kernel
