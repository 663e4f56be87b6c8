#include "cli/common.h"

#include <cctype>
#include <charconv>

#include "util/error.h"
#include "util/thread_pool.h"

namespace herd::cli {

std::shared_ptr<model::Model> load_model(const std::string& path) {
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path));
  return model::Model::load(file);
}

std::vector<std::int32_t> parse_token_list(const std::string& text, int n_vocab) {
  std::vector<std::int32_t> ids;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data() + i)
      fail_argument("--tokens: '{}' is not a token id (expected a list like 1,2,3)",
                    text.substr(i, 16));
    if (value < 0 || value >= n_vocab)
      fail_argument("--tokens: id {} is outside the vocabulary [0, {})", value, n_vocab);
    ids.push_back(static_cast<std::int32_t>(value));
    i = static_cast<std::size_t>(end - text.data());
  }
  if (ids.empty()) fail_argument("--tokens: no token ids given");
  return ids;
}

int resolve_threads(int option) {
  return option > 0 ? option : ThreadPool::default_thread_count();
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

}  // namespace herd::cli
