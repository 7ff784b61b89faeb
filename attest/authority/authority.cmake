# The attestation authority: config, the socket-free core (node attestation, workload SVIDs,
# revocations, the update feed) and its gRPC services. proxy/ hosts it as `portcullis authority`.
# Included from attest/CMakeLists.txt, so paths are relative to attest/.
add_library(portcullis_authority STATIC
  authority/authority_config.cc
  authority/authority_core.cc
  authority/authority_core_admin.cc
  authority/authority_messages.cc
  authority/authority_requests.cc
  authority/authority_service.cc
  authority/update_feed.cc
)
target_link_libraries(portcullis_authority PUBLIC portcullis_authority_ca portcullis_authority_store portcullis_attest portcullis_mtls
                      portcullis_grpc_api portcullis_config)
