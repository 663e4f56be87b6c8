#include "support/test_data.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace herd::testing {
namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* env = std::getenv("HERD_SHARED")) {
    if (fs::is_directory(env)) return fs::path(env);
  }
  for (fs::path candidate :
       {fs::path(HERD_SOURCE_DIR) / ".." / "shared", fs::path(HERD_SOURCE_DIR) / "shared"}) {
    if (fs::is_directory(candidate)) return fs::canonical(candidate);
  }
  return {};
}

fs::path shared_file(const std::string& relative) {
  fs::path dir = shared_dir();
  if (dir.empty()) return {};
  fs::path p = dir / relative;
  return fs::exists(p) ? p : fs::path();
}

namespace {
std::mutex g_mutex;
std::vector<fs::path>* g_dirs = nullptr;
void remove_dirs() {
  if (!g_dirs) return;
  for (auto& d : *g_dirs) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}
}  // namespace

fs::path temp_dir(const std::string& tag) {
  std::lock_guard lock(g_mutex);
  if (!g_dirs) {
    g_dirs = new std::vector<fs::path>();
    std::atexit(remove_dirs);
  }
  std::string templ = (fs::temp_directory_path() / ("herd-" + tag + "-XXXXXX")).string();
  char* made = ::mkdtemp(templ.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  g_dirs->push_back(made);
  return fs::path(made);
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<float> read_f32(const fs::path& path) {
  auto bytes = read_bytes(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

std::vector<std::int32_t> read_ids(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::int32_t> ids;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    std::istringstream ls(line);
    long v;
    while (ls >> v) ids.push_back(static_cast<std::int32_t>(v));
  }
  return ids;
}

fs::path herd_binary() {
  return fs::path(HERD_BINARY_DIR) / "herd";
}

}  // namespace herd::testing
