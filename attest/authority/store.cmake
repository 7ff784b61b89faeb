# The attestation authority's persistent store: registration entries, join tokens, issued SVIDs,
# revocations and small authority state in SQLite. Included from attest/CMakeLists.txt, so paths are
# relative to attest/.
add_library(portcullis_authority_store STATIC
  authority/authority_store.cc
  authority/entries_file.cc
  authority/registration_entry.cc
  authority/sqlite_db.cc
  authority/store_schema.cc
)
target_link_libraries(portcullis_authority_store PUBLIC portcullis_mtls portcullis_config SQLite::SQLite3)
