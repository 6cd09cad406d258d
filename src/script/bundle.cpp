// Bundles (script.h): the script's files, read once where the plan is loaded and shipped with the plan.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "script/runtime.h"

namespace meridian::script {

std::string NormalizePath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    const size_t slash = path.find('/', i);
    const size_t end = slash == std::string::npos ? path.size() : slash;
    std::string part = path.substr(i, end - i);
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else {
        parts.push_back(part);
      }
    } else if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    if (slash == std::string::npos) break;
    i = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out.push_back('/');
    out += p;
  }
  return out;
}

namespace {

constexpr size_t kMaxBundleBytes = 3u << 20;  // plans are capped at 4 MiB; the bundle travels inside

class DiskSource final : public FileSource {
 public:
  explicit DiskSource(std::string base) : base_(std::move(base)) {}
  Result<std::string> Read(const std::string& key) override {
    const std::filesystem::path path =
        base_.empty() ? std::filesystem::path(key) : std::filesystem::path(base_) / key;
    std::ifstream in(path, std::ios::binary);
    if (!in) return MakeError(ErrorCode::kNotFound, fmt::format("cannot read '{}'", path.string()));
    std::ostringstream text;
    text << in.rdbuf();
    total_ += text.str().size();
    if (total_ > kMaxBundleBytes) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the script and the files it opens exceed {} MiB ('{}')",
                                   kMaxBundleBytes >> 20, path.string()));
    }
    return text.str();
  }

 private:
  std::string base_;
  size_t total_ = 0;
};

}  // namespace

Result<std::string> BundleSource::Read(const std::string& key) {
  auto it = bundle_.files.find(key);
  if (it == bundle_.files.end()) {
    return MakeError(
        ErrorCode::kNotFound,
        fmt::format("'{}' is not part of the script's bundle (only files imported or open()ed by the "
                    "init code travel with the plan)",
                    key));
  }
  return it->second;
}

Result<Bundle> LoadBundle(const std::string& base_dir, const std::string& entry) {
  Bundle bundle;
  bundle.entry = NormalizePath(entry);
  if (entry.empty() || entry.front() == '/' || bundle.entry.rfind("..", 0) == 0) {
    // Absolute or outside: bundle relative to the entry's own directory instead.
    const std::filesystem::path p = std::filesystem::path(base_dir.empty() ? "." : base_dir) / entry;
    return LoadBundle(p.parent_path().lexically_normal().string(), p.filename().string());
  }
  DiskSource disk(base_dir == "." ? "" : base_dir);
  RuntimeConfig config;
  config.files = &disk;
  config.display_prefix = (base_dir.empty() || base_dir == ".") ? "" : base_dir + "/";
  config.on_read = [&](const std::string& key, const std::string& text) { bundle.files[key] = text; };
  auto rt = Runtime::Create(std::move(config));
  if (!rt.ok()) return rt.error();
  auto info = (*rt)->Init(bundle.entry);
  if (!info.ok()) return info.error();
  return bundle;
}

Result<ScriptInfo> Inspect(const Bundle& bundle) {
  BundleSource source(bundle);
  RuntimeConfig config;
  config.files = &source;
  auto rt = Runtime::Create(std::move(config));
  if (!rt.ok()) return rt.error();
  return (*rt)->Init(bundle.entry);
}

}  // namespace meridian::script
