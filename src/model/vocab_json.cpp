// Vocabulary loading from a Hugging Face tokenizer.json (byte-level BPE models), with the
// special-token settings of a tokenizer_config.json found beside it.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "model/pretokenizer.h"
#include "model/vocab.h"
#include "util/error.h"

namespace herd::model {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open tokenizer file '{}'; check the path", path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail_format("'{}' is not valid JSON ({}); the file is truncated or not a tokenizer", path,
                e.what());
  }
}

// Adds the regexes of one pre_tokenizer node (tokenizers/src/pre_tokenizers).
void add_pre_tokenizer(const json& node, const std::string& path, Vocab& vocab, bool& byte_level) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& child : node.at("pretokenizers"))
      add_pre_tokenizer(child, path, vocab, byte_level);
  } else if (type == "Split") {
    const json& pattern = node.at("pattern");
    std::string regex;
    if (pattern.contains("Regex")) {
      regex = pattern.at("Regex").get<std::string>();
    } else {
      regex = "\\Q" + pattern.at("String").get<std::string>() + "\\E";
    }
    if (node.value("behavior", "Isolated") != "Isolated" || node.value("invert", false)) {
      fail_format(
          "'{}': pre-tokenizer Split with behavior '{}' (invert {}) is not supported, "
          "only 'Isolated'",
          path, node.value("behavior", ""), node.value("invert", false));
    }
    vocab.pre_patterns.push_back(std::move(regex));
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (node.value("use_regex", true)) vocab.pre_patterns.push_back(PreTokenizer::gpt2_pattern());
  } else if (type == "Digits") {
    vocab.pre_patterns.push_back(node.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
  } else {
    fail_format(
        "'{}': pre-tokenizer '{}' is not supported (herd reads Sequence, Split, "
        "ByteLevel and Digits)",
        path, type);
  }
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...} or null.
std::string config_token(const json& config, const char* key) {
  if (!config.contains(key)) return {};
  const json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return {};
}

json read_config_beside(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  std::string name = p.filename().string();
  const std::string suffix = "tokenizer.json";
  if (name.size() < suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return json();
  }
  name.replace(name.size() - suffix.size(), suffix.size(), "tokenizer_config.json");
  const fs::path config = p.parent_path() / name;
  if (!fs::exists(config)) return json();
  return read_json(config.string());
}

const json* find_template_processing(const json& node) {
  if (!node.is_object()) return nullptr;
  const std::string type = node.value("type", "");
  if (type == "TemplateProcessing") return &node;
  if (type == "Sequence" && node.contains("processors")) {
    for (const json& child : node.at("processors")) {
      if (const json* found = find_template_processing(child)) return found;
    }
  }
  return nullptr;
}

// BOS/EOS and whether they are added: tokenizer_config.json when present, else what the
// post-processor template puts around a single sequence.
void set_bos_eos(Vocab& vocab, const json& root, const json& config) {
  if (config.is_object()) {
    vocab.bos = vocab.find(config_token(config, "bos_token"));
    vocab.eos = vocab.find(config_token(config, "eos_token"));
    vocab.padding = vocab.find(config_token(config, "pad_token"));
    vocab.unknown = vocab.find(config_token(config, "unk_token"));
    if (config.contains("add_bos_token") && config.at("add_bos_token").is_boolean()) {
      vocab.add_bos = config.at("add_bos_token").get<bool>() && vocab.bos >= 0;
    } else {
      // Unsaid: Llama 3 style vocabularies (ignore_merges) start with BOS, as llama.cpp's
      // default for that pre-tokenizer; others (Qwen: no bos_token) do not.
      vocab.add_bos = vocab.ignore_merges && vocab.bos >= 0;
    }
    if (config.contains("add_eos_token") && config.at("add_eos_token").is_boolean()) {
      vocab.add_eos = config.at("add_eos_token").get<bool>() && vocab.eos >= 0;
    }
  }
  const json* tp = find_template_processing(root.value("post_processor", json()));
  if (tp != nullptr && tp->contains("single") && tp->at("single").is_array()) {
    const json& single = tp->at("single");
    bool seen_sequence = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::int32_t id = vocab.find(item.at("SpecialToken").value("id", ""));
        if (id < 0) continue;
        if (!seen_sequence) {
          vocab.bos = id;
          vocab.add_bos = true;
        } else {
          if (vocab.eos < 0) vocab.eos = id;
          vocab.add_eos = true;
        }
      }
    }
  }
  if (vocab.eos < 0) {
    for (const char* text : {"<|end_of_text|>", "<|endoftext|>", "</s>"}) {
      vocab.eos = vocab.find(text);
      if (vocab.eos >= 0) break;
    }
  }
}

// Token texts and types from model.vocab and added_tokens; ids missing from both are unused.
void read_tokens(const json& root, const std::string& path, Vocab& vocab) {
  const json& model = root.at("model");
  std::int64_t max_id = -1;
  for (const auto& [text, id] : model.at("vocab").items()) {
    max_id = std::max<std::int64_t>(max_id, id.get<std::int64_t>());
  }
  const json added = root.value("added_tokens", json::array());
  for (const json& t : added)
    max_id = std::max<std::int64_t>(max_id, t.at("id").get<std::int64_t>());
  if (max_id < 0 || max_id > (1 << 30)) fail_format("'{}': vocabulary ids are out of range", path);
  vocab.tokens.assign(max_id + 1, std::string());
  vocab.types.assign(max_id + 1, TokenType::kUnused);
  for (const auto& [text, id] : model.at("vocab").items()) {
    const auto i = id.get<std::int64_t>();
    if (i < 0) fail_format("'{}': token '{}' has negative id {}", path, text, i);
    vocab.tokens[i] = text;
    vocab.types[i] = TokenType::kNormal;
  }
  for (const json& t : added) {
    const auto i = t.at("id").get<std::int64_t>();
    if (i < 0) fail_format("'{}': added token has negative id {}", path, i);
    vocab.tokens[i] = t.at("content").get<std::string>();
    // Non-special added tokens are matched in text like special ones (llama.cpp: USER_DEFINED).
    vocab.types[i] = t.value("special", false) ? TokenType::kControl : TokenType::kUserDefined;
  }
}

// model.merges: "left right" strings (older files) or [left, right] pairs (newer ones).
std::vector<std::pair<std::string, std::string>> read_merges(const json& model,
                                                             const std::string& path) {
  std::vector<std::pair<std::string, std::string>> merges;
  const json& raw = model.at("merges");
  merges.reserve(raw.size());
  for (const json& m : raw) {
    if (m.is_array() && m.size() == 2) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const std::size_t space = s.find(' ', 1);
      if (space == std::string::npos) fail_format("'{}': merge '{}' is not 'left right'", path, s);
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      fail_format("'{}': a merge is neither a 'left right' string nor a pair", path);
    }
  }
  return merges;
}

}  // namespace

Vocab load_tokenizer_json_vocab(const std::string& path) {
  const json root = read_json(path);
  Vocab vocab;
  vocab.kind = VocabKind::kBytePairs;
  try {
    const json& model = root.at("model");
    if (model.value("type", "BPE") != "BPE") {
      fail_format("'{}': tokenizer model '{}' is not supported from tokenizer.json (only BPE)",
                  path, model.value("type", ""));
    }
    read_tokens(root, path, vocab);
    const std::vector<std::pair<std::string, std::string>> merges = read_merges(model, path);
    vocab.ignore_merges = model.value("ignore_merges", false);

    bool byte_level = false;
    add_pre_tokenizer(root.value("pre_tokenizer", json()), path, vocab, byte_level);
    if (root.contains("decoder") && root.at("decoder").is_object() &&
        root.at("decoder").value("type", "") == "ByteLevel") {
      byte_level = true;
    }
    if (!byte_level || model.value("byte_fallback", false)) {
      fail_format(
          "'{}' is not a byte-level BPE tokenizer; for SentencePiece models use the "
          "GGUF file's tokenizer instead",
          path);
    }
    if (root.contains("normalizer") && !root.at("normalizer").is_null()) {
      const std::string type = root.at("normalizer").value("type", "");
      if (type != "NFC")
        fail_format("'{}': normalizer '{}' is not supported (only NFC)", path, type);
      vocab.normalize_nfc = true;
    }

    finish_vocab(vocab, merges);
    set_bos_eos(vocab, root, read_config_beside(path));
    finish_special_tokens(vocab);
  } catch (const json::exception& e) {
    fail_format("'{}' is not a tokenizer.json we can read: {}", path, e.what());
  }
  return vocab;
}

}  // namespace herd::model
