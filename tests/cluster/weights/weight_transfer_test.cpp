// Weight transfer end to end: a WeightServer serving a golden model from an httplib server on
// 127.0.0.1 (port chosen at run time), fetched by fetch_shard into temporary data dirs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "cluster/weights/file_hash.h"
#include "cluster/placement/shard_plan.h"
#include "cluster/weights/weight_fetcher.h"
#include "cluster/weights/weight_server.h"
#include "model/model.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;

class WeightTransfer : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::shared_file("golden/qwen2-f16.gguf");
    if (path_.empty()) GTEST_SKIP() << "reference data ../shared/golden/qwen2-f16.gguf not found";
    file_ = std::make_shared<const gguf::File>(gguf::File::open(path_.string()));
    digest_ = std::make_shared<const FileDigest>(digest_gguf(*file_));
  }

  void TearDown() override {
    if (http_) http_->stop();
    if (thread_.joinable()) thread_.join();
  }

  void serve(WeightServerOptions options = {}) {
    options.chunk_bytes = 16 << 10;  // small chunks so that a hook can cut a tensor mid-way
    weights_ = std::make_shared<WeightServer>(file_, digest_, options);
    http_ = std::make_unique<httplib::Server>();
    register_weight_routes(*http_, weights_);
    port_ = http_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { http_->listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!http_->is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_TRUE(http_->is_running());
  }

  FetchOptions options(model::LayerRange range, const std::filesystem::path& dir) const {
    FetchOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.model_hash = digest_->identity;
    o.range = range;
    o.data_dir = dir;
    o.timeout_s = 10;
    return o;
  }

  // The shard loads as a model stage and holds exactly the stage's tensors, byte for byte.
  void expect_shard_matches(const std::filesystem::path& shard, model::LayerRange range) const {
    auto file = std::make_shared<const gguf::File>(gguf::File::open(shard.string()));
    auto model = model::Model::load(file, range);
    EXPECT_EQ(model->range().first, range.first);
    EXPECT_EQ(model->has_head(), range.last == 3);
    auto names = tensors_for_range(*file_, range);
    ASSERT_EQ(file->tensors().size(), names.size());
    for (const auto& name : names) {
      const gguf::TensorInfo* ours = file->find_tensor(name);
      const gguf::TensorInfo* orig = file_->find_tensor(name);
      ASSERT_NE(ours, nullptr) << name;
      ASSERT_EQ(ours->n_bytes, orig->n_bytes) << name;
      EXPECT_EQ(0, std::memcmp(file->tensor_data(*ours), file_->tensor_data(*orig), orig->n_bytes))
          << name;
    }
    EXPECT_EQ(file->metadata().get_string("general.architecture"), "qwen2");
    EXPECT_EQ(file->metadata().get_string_array("tokenizer.ggml.tokens"),
              file_->metadata().get_string_array("tokenizer.ggml.tokens"));
  }

  std::filesystem::path path_;
  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<const FileDigest> digest_;
  std::shared_ptr<WeightServer> weights_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(WeightTransfer, FetchedStagesLoadAndEqualTheOriginal) {
  serve();
  auto dir_a = testing::temp_dir("fetch_a");
  auto dir_b = testing::temp_dir("fetch_b");
  std::uint64_t last_done = 0, last_total = 0;
  auto o = options({0, 2}, dir_a);
  o.progress = [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done, last_total = total;
  };
  FetchResult a = fetch_shard(o);
  EXPECT_FALSE(a.from_cache);
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(a.bytes_received, weights_->manifest({0, 2}).tensor_bytes());
  expect_shard_matches(a.path, {0, 2});
  FetchResult b = fetch_shard(options({2, 3}, dir_b));
  expect_shard_matches(b.path, {2, 3});
  EXPECT_EQ(weights_->tensor_requests(),
            tensors_for_range(*file_, {0, 2}).size() + tensors_for_range(*file_, {2, 3}).size());
}

TEST_F(WeightTransfer, SecondFetchUsesTheCacheWithoutNetwork) {
  serve();
  auto dir = testing::temp_dir("fetch_cache");
  fetch_shard(options({0, 2}, dir));
  std::uint64_t requests = weights_->tensor_requests();
  http_->stop();  // any network use now fails
  thread_.join();
  FetchResult again = fetch_shard(options({0, 2}, dir));
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.bytes_received, 0u);
  EXPECT_EQ(weights_->tensor_requests(), requests);
}

TEST_F(WeightTransfer, InterruptedTransferResumesWithRange) {
  std::atomic<bool> cut{true};
  WeightServerOptions so;
  so.hook = [&](const std::string& tensor, std::uint64_t offset, std::string&) {
    // Drop the connection half-way through the embedding, once.
    return !(tensor == "token_embd.weight" && offset >= (64 << 10) && cut.exchange(false));
  };
  serve(so);
  auto dir = testing::temp_dir("fetch_resume");
  auto o = options({0, 2}, dir);
  o.max_attempts = 1;
  try {
    fetch_shard(o);
    FAIL() << "the cut transfer should fail with max_attempts = 1";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("token_embd.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port_)), std::string::npos) << what;
  }
  EXPECT_EQ(weights_->ranged_requests(), 0u);
  FetchResult r = fetch_shard(o);
  EXPECT_EQ(weights_->ranged_requests(), 1u);  // the rest of token_embd, from where it stopped
  // Resumed, not restarted: at least the first 16 KiB chunk of token_embd was kept.
  EXPECT_LE(r.bytes_received + (16 << 10), weights_->manifest({0, 2}).tensor_bytes());
  expect_shard_matches(r.path, {0, 2});
}

TEST_F(WeightTransfer, DroppedConnectionIsRetriedWithinOneFetch) {
  std::atomic<int> cuts{2};
  WeightServerOptions so;
  so.hook = [&](const std::string& tensor, std::uint64_t offset, std::string&) {
    return !(tensor == "blk.2.ffn_up.weight" && offset > 0 && cuts.fetch_sub(1) > 0);
  };
  serve(so);
  FetchResult r = fetch_shard(options({2, 3}, testing::temp_dir("fetch_retry")));
  EXPECT_EQ(weights_->ranged_requests(), 2u);
  expect_shard_matches(r.path, {2, 3});
}

TEST_F(WeightTransfer, CorruptedByteIsDetectedAndRefetched) {
  std::atomic<bool> corrupt{true};
  WeightServerOptions so;
  so.hook = [&](const std::string& tensor, std::uint64_t offset, std::string& chunk) {
    if (tensor == "blk.0.attn_k.weight" && offset == 0 && corrupt.exchange(false)) chunk[7] ^= 0x10;
    return true;
  };
  serve(so);
  FetchResult r = fetch_shard(options({0, 2}, testing::temp_dir("fetch_corrupt")));
  EXPECT_EQ(weights_->tensor_requests(), tensors_for_range(*file_, {0, 2}).size() + 1);
  expect_shard_matches(r.path, {0, 2});
}

TEST_F(WeightTransfer, PersistentCorruptionIsReportedWithTheTensor) {
  WeightServerOptions so;
  so.hook = [](const std::string& tensor, std::uint64_t offset, std::string& chunk) {
    if (tensor == "output_norm.weight" && offset == 0) chunk[0] ^= 1;
    return true;
  };
  serve(so);
  try {
    fetch_shard(options({2, 3}, testing::temp_dir("fetch_bad")));
    FAIL() << "a tensor that never matches its checksum must fail the fetch";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("output_norm.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("SHA-256"), std::string::npos) << what;
  }
}

TEST_F(WeightTransfer, CorruptCachedShardIsFetchedAgain) {
  serve();
  auto dir = testing::temp_dir("fetch_recache");
  FetchResult first = fetch_shard(options({2, 3}, dir));
  {
    gguf::File f = gguf::File::open(first.path.string());
    std::uint64_t at = f.data_offset() + f.find_tensor("blk.2.ffn_down.weight")->offset + 10;
    std::fstream io(first.path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(at));
    io.put('\x55');
  }
  FetchResult second = fetch_shard(options({2, 3}, dir));
  EXPECT_FALSE(second.from_cache);
  expect_shard_matches(second.path, {2, 3});
}

TEST_F(WeightTransfer, AuthenticatedServerRejectsUnsignedAndForeignRequests) {
  auto auth = std::make_shared<HttpAuth>(Secret(std::string(32, 'k')));
  WeightServerOptions so;
  so.verify = auth->verifier();
  so.response_auth = auth;
  serve(so);
  auto signed_options = options({0, 2}, testing::temp_dir("fetch_auth"));
  signed_options.auth = auth;
  expect_shard_matches(fetch_shard(signed_options).path, {0, 2});

  auto unsigned_options = options({0, 2}, testing::temp_dir("fetch_noauth"));
  try {
    fetch_shard(unsigned_options);
    FAIL() << "an unsigned fetch must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
  auto foreign = options({0, 2}, testing::temp_dir("fetch_foreign"));
  foreign.auth = std::make_shared<HttpAuth>(Secret(std::string(32, 'x')));
  EXPECT_THROW(fetch_shard(foreign), Error);
}

TEST_F(WeightTransfer, UnknownModelHashIsRefusedByName) {
  serve();
  auto o = options({0, 2}, testing::temp_dir("fetch_other"));
  o.model_hash = std::string(64, '0');
  try {
    fetch_shard(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace herd::cluster
