// The command-line contract of `herd run`, `herd logits` and `herd inspect`, checked against the
// reference outputs in ../shared: the exact commands a user (or a checker) types.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "support/test_data.h"

namespace herd::testing {
namespace {

struct CommandResult {
  int status = -1;
  std::string out;
};

// Runs a shell command with a time bound; stdout only (stderr goes to the test log).
CommandResult run_command(const std::string& args) {
  std::string cmd = "timeout 120 " + herd_binary().string() + " " + args;
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = ::pclose(p);
  return r;
}

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

TEST(RunCommand, Stories260KGreedyIdsFromBosMatchTheGolden200) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  HERD_REQUIRE_SHARED(golden, "models/stories260K.golden_greedy_ids.txt");
  auto r = run_command("run -m " + model.string() + " --tokens 1 -n 200 --temp 0 --ids -t 1");
  ASSERT_EQ(r.status, 0);
  std::vector<std::int32_t> ids;
  std::istringstream in(r.out);
  for (long v; in >> v;) ids.push_back(static_cast<std::int32_t>(v));
  EXPECT_EQ(ids, read_ids(golden));
}

TEST(RunCommand, Stories260KGreedyTextFromBosMatchesTheGoldenText) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  HERD_REQUIRE_SHARED(golden, "models/stories260K.golden_greedy_n200.txt");
  auto r = run_command("run -m " + model.string() + " -n 200 --temp 0");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(trim_newlines(r.out), trim_newlines(read_text(golden)));
}

TEST(RunCommand, SameSeedGivesSameSampledText) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  std::string args = "run -m " + model.string() + " -p 'Once upon' -n 40 --temp 0.9 --seed 7";
  auto a = run_command(args);
  auto b = run_command(args);
  ASSERT_EQ(a.status, 0);
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);
}

TEST(RunCommand, PromptLongerThanTheContextIsAClearError) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  auto r =
      run_command("run -m " + model.string() + " -p 'Once upon a time there was' -n 50 -c 8 2>&1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("context"), std::string::npos) << r.out;
}

TEST(LogitsCommand, WritesEveryPositionMatchingTheGoldenLogits) {
  HERD_REQUIRE_SHARED(model, "golden/llama-f32.gguf");
  HERD_REQUIRE_SHARED(golden, "golden/llama-f32.logits.f32");
  auto out = temp_dir("logits") / "out.f32";
  const std::string tokens =
      "1,403,407,261,378,432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,"
      "419,292,411,322,265,282,295,433,426";
  auto r =
      run_command("logits -m " + model.string() + " --tokens " + tokens + " -o " + out.string());
  ASSERT_EQ(r.status, 0);
  auto ours = read_f32(out);
  auto ref = read_f32(golden);
  ASSERT_EQ(ours.size(), ref.size());
  const std::size_t n_vocab = 512;
  for (std::size_t row = 0; row < ref.size() / n_vocab; ++row) {
    double dot = 0, na = 0, nb = 0;
    for (std::size_t i = row * n_vocab; i < (row + 1) * n_vocab; ++i) {
      dot += double(ours[i]) * ref[i];
      na += double(ours[i]) * ours[i];
      nb += double(ref[i]) * ref[i];
    }
    // f32 weights: the only differences are float summation order (see golden README).
    EXPECT_GE(dot / std::sqrt(na * nb), 0.999) << "position " << row;
  }
}

TEST(InspectCommand, ShowsArchitectureHyperParametersAndTensors) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  auto r = run_command("inspect " + model.string());
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("llama"), std::string::npos);
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(r.out.find("48 tensors"), std::string::npos) << r.out.substr(0, 400);
}

TEST(InspectCommand, CorruptFileIsAClearErrorNotACrash) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  auto bytes = read_bytes(model);
  bytes.resize(bytes.size() / 2);
  auto path = temp_dir("corrupt") / "half.gguf";
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  auto r = run_command("inspect " + path.string() + " 2>&1");
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.out;  // 1: a reported error; a crash is not 1
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace herd::testing
