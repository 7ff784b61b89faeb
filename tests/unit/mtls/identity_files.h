#pragma once

// A static identity on disk for the SvidStore tests: a trust domain's CA, a workload SVID, a JWT
// key, written as real files in a fresh temp directory and swapped the ways operators swap them.
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "config/file_watcher.h"
#include "mtls/identity_config.h"
#include "test_certs.h"

namespace portcullis::mtls::testing {

inline CertSpec leaf_for(const std::string& id) {
  CertSpec s;
  s.uri_sans = {id};
  return s;
}

class IdentityFiles {
 public:
  IdentityFiles() {
    char tmpl[] = "/tmp/portcullis-identity-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ca = must(mint_certificate(ca_spec("example.org CA", "example.org"), nullptr));
    leaf = must(mint_certificate(leaf_for("spiffe://example.org/web"), &ca));
    jwt = must(mint_certificate(leaf_for("spiffe://example.org/jwt"), &ca));  // only its P-256 key is used
  }
  ~IdentityFiles() { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // write_atomically writes a temp file and renames it over `name`, as cert-manager and most tools do.
  void write_atomically(const std::string& name, const std::string& text) const {
    std::string tmp = path(name) + ".tmp";
    std::ofstream(tmp, std::ios::trunc) << text;
    std::filesystem::rename(tmp, path(name));
  }

  void write_all(const MintedCert& svid, const MintedCert& bundle_ca) const {
    write_atomically("cert.pem", svid.cert_pem());
    write_atomically("key.pem", svid.key_pem());
    write_atomically("bundle.pem", bundle_ca.cert_pem());
    write_atomically("jwt.pem", jwt.key_pem());
  }

  IdentityConfig config() const {
    IdentityConfig c;
    c.trust_domain = "example.org";
    c.certificate_chain.filename = path("cert.pem");
    c.private_key.filename = path("key.pem");
    c.trust_bundle.filename = path("bundle.pem");
    c.jwt_signing_key = DataSource{path("jwt.pem"), ""};
    return c;
  }

  MintedCert ca, leaf, jwt;

 private:
  std::string dir_;
};

// wait_for_files waits up to `timeout` for the watcher's fd, then lets a burst of events settle
// (as the proxy's debounce does) so the test reloads once per change.
inline bool wait_for_files(config::FileWatcher& watcher, std::chrono::milliseconds timeout) {
  pollfd p{watcher.fd(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  bool any = watcher.drain();
  while (::poll(&p, 1, 20) > 0) any = watcher.drain() || any;
  return any;
}

}  // namespace portcullis::mtls::testing
