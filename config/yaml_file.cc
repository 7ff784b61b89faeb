#include "config/yaml_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace portcullis::config {
namespace {

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t first_invalid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string::npos;
}

Location location_of_offset(const std::string& text, size_t offset, const std::string& file) {
  Location loc{file, 1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++loc.line;
      loc.column = 1;
    } else {
      ++loc.column;
    }
  }
  return loc;
}

// AliasFinder records the first alias. Aliases let a few hundred bytes expand into a cycle or an
// exponential tree that every later walk of the document would follow, so they are refused before
// the tree is built.
class AliasFinder : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> alias;
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    if (!alias) alias = mark;
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

std::optional<Node> load_yaml_text(const std::string& text, const std::string& file, ErrorList& errors) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    errors.add(Location{file, 0, 0}, "", "config is empty");
    return std::nullopt;
  }
  if (size_t nul = text.find('\0'); nul != std::string::npos) {
    errors.add(location_of_offset(text, nul, file), "",
               "config contains a NUL byte: this is binary data, not YAML");
    return std::nullopt;
  }
  if (size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    errors.add(location_of_offset(text, bad, file), "", "config is not valid UTF-8");
    return std::nullopt;
  }
  YAML::Node root;
  try {
    std::istringstream events_in(text);
    YAML::Parser parser(events_in);
    AliasFinder finder;
    while (parser.HandleNextDocument(finder) && !finder.alias) {
    }
    if (finder.alias) {
      errors.add(Location{file, finder.alias->line + 1, finder.alias->column + 1}, "",
                 "YAML aliases (*name) are not supported: repeat the block instead");
      return std::nullopt;
    }
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    Location loc{file, 0, 0};
    if (!e.mark.is_null()) loc = Location{file, e.mark.line + 1, e.mark.column + 1};
    errors.add(loc, "", "YAML nesting is deeper than " + std::to_string(e.depth()) + " levels");
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    Location loc{file, 0, 0};
    if (!e.mark.is_null()) loc = Location{file, e.mark.line + 1, e.mark.column + 1};
    errors.add(loc, "", "YAML syntax error: " + e.msg);
    return std::nullopt;
  }
  Node node(root, "", std::make_shared<const std::string>(file), Location{file, 1, 1});
  if (!root.IsMap()) {
    errors.add(node.location(), "", "config root must be a map, got " + node.kind_name());
    return std::nullopt;
  }
  return node;
}

std::optional<Node> load_yaml_file(const std::string& path, size_t max_bytes, ErrorList& errors) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errors.add(Location{path, 0, 0}, "", std::string("cannot open config: ") + std::strerror(errno));
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    errors.add(Location{path, 0, 0}, "", "config path is a directory");
    return std::nullopt;
  }
  // Read through the fd rather than trusting st_size: pipes and /proc files report 0, and a
  // file can grow while we read it.
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      errors.add(Location{path, 0, 0}, "", std::string("cannot read config: ") + std::strerror(err));
      return std::nullopt;
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      errors.add(Location{path, 0, 0}, "",
                 "config is larger than the limit of " + std::to_string(max_bytes) +
                     " bytes (--max-config-bytes)");
      return std::nullopt;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return load_yaml_text(text, path, errors);
}

}  // namespace portcullis::config
