#include "cluster/control/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <fstream>

#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

std::string hex_of(const std::string& raw) {
  return to_hex(raw);
}

// RFC 4231 test case 2 uses a 4-byte key ("Jefe"), below our minimum; test case 1's key is 20
// bytes of 0x0b: HMAC-SHA256(key, "Hi There").
TEST(Auth, HmacMatchesRfc4231TestCase1) {
  Secret key(std::string(20, '\x0b'));
  EXPECT_EQ(hex_of(hmac_sha256(key, "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(Auth, ConstantTimeEqualComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("abcdef", "abcdef"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcdeg"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcde"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(Auth, HexRoundTripsAndRejectsGarbage) {
  std::string raw("\x00\x7f\x80\xff", 4), back;
  EXPECT_EQ(to_hex(raw), "007f80ff");
  ASSERT_TRUE(from_hex("007F80ff", back));
  EXPECT_EQ(back, raw);
  EXPECT_FALSE(from_hex("abc", back));
  EXPECT_FALSE(from_hex("zz", back));
}

TEST(Auth, NoncesAndSecretsAreFreshAndWellFormed) {
  auto a = make_nonce(), b = make_nonce();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(generate_secret_text().size(), 64u);
}

TEST(Auth, SecretShorterThanMinimumIsRejected) {
  EXPECT_THROW(Secret("short"), InvalidArgument);
}

std::filesystem::path write_file(const std::string& name, const std::string& text, mode_t mode) {
  auto path = herd::testing::temp_dir("auth") / name;
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(Auth, LoadSecretTrimsWhitespace) {
  auto path = write_file("ok", "  0123456789abcdef0123\n", 0600);
  EXPECT_EQ(load_secret(path).bytes(), "0123456789abcdef0123");
}

TEST(Auth, LoadSecretRejectsMissingEmptyShortAndGroupReadableFiles) {
  auto expect_error = [](const std::filesystem::path& p, const std::string& needle) {
    try {
      load_secret(p);
      ADD_FAILURE() << "accepted " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(herd::testing::temp_dir("auth") / "absent", "not found");
  expect_error(write_file("empty", "\n\n", 0600), "empty");
  expect_error(write_file("short", "abc\n", 0600), "only 3 bytes");
  expect_error(write_file("open", "0123456789abcdef0123\n", 0644), "chmod 600");
}

TEST(ReplayGuard, AcceptsFreshNonceOnceAndRejectsItsReplay) {
  ReplayGuard guard(1000);
  std::string reason;
  EXPECT_TRUE(guard.accept("n1", 5000, 5000, reason));
  EXPECT_FALSE(guard.accept("n1", 5000, 5100, reason));
  EXPECT_NE(reason.find("already seen"), std::string::npos);
  EXPECT_TRUE(guard.accept("n2", 5000, 5100, reason));
}

TEST(ReplayGuard, RejectsTimestampsOutsideTheWindowEitherWay) {
  ReplayGuard guard(1000);
  std::string reason;
  EXPECT_FALSE(guard.accept("old", 3999, 5000, reason));
  EXPECT_NE(reason.find("NTP"), std::string::npos);
  EXPECT_FALSE(guard.accept("future", 6001, 5000, reason));
  EXPECT_TRUE(guard.accept("edge", 4000, 5000, reason));
  // Forged extremes are rejected without overflow.
  EXPECT_FALSE(guard.accept("min", INT64_MIN, 5000, reason));
  EXPECT_FALSE(guard.accept("max", INT64_MAX, 5000, reason));
}

TEST(ReplayGuard, ForgetsNoncesOnceTheyLeaveTheWindowAndStaysBounded) {
  ReplayGuard guard(1000, 4);
  std::string reason;
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(guard.accept("n" + std::to_string(i), 100 + i, 100, reason));
  EXPECT_LE(guard.size(), 4u);
  EXPECT_TRUE(guard.accept("late", 5000, 5000, reason));
  EXPECT_EQ(guard.size(), 1u);  // all earlier entries are outside the window now
}

}  // namespace
}  // namespace herd::cluster
