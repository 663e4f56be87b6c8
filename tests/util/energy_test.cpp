#include "util/energy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace herd {
namespace {

namespace fs = std::filesystem;

// A fake /sys/class/powercap: package zones with their counters (sub-zones too, which the
// packages already count).
class FakePowercap {
 public:
  FakePowercap() : root_(fs::temp_directory_path() / ("herd-powercap-" + std::to_string(::getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakePowercap() { fs::remove_all(root_); }

  void zone(const std::string& name, std::uint64_t energy_uj, std::uint64_t range_uj) {
    fs::create_directories(root_ / name);
    write(root_ / name / "max_energy_range_uj", range_uj);
    set(name, energy_uj);
  }
  void set(const std::string& name, std::uint64_t energy_uj) {
    write(root_ / name / "energy_uj", energy_uj);
  }
  std::string path() const { return root_.string(); }

 private:
  static void write(const fs::path& p, std::uint64_t v) { std::ofstream(p) << v << "\n"; }
  fs::path root_;
};

TEST(EnergyMeter, SumsThePackagesAndIgnoresTheirSubZones) {
  FakePowercap fake;
  fake.zone("intel-rapl:0", 1'000'000, 100'000'000);
  fake.zone("intel-rapl:1", 5'000'000, 100'000'000);
  fake.zone("intel-rapl:0:0", 0, 100'000'000);  // the cores of package 0: already counted
  EnergyMeter meter(fake.path());
  ASSERT_TRUE(meter.available()) << meter.unavailable_reason();
  EXPECT_DOUBLE_EQ(*meter.joules(), 0.0);
  fake.set("intel-rapl:0", 3'000'000);
  fake.set("intel-rapl:1", 6'000'000);
  fake.set("intel-rapl:0:0", 99'000'000);
  EXPECT_DOUBLE_EQ(*meter.joules(), 3.0);  // 2 J + 1 J
}

TEST(EnergyMeter, CountsAcrossTheCounterWrapping) {
  FakePowercap fake;
  fake.zone("intel-rapl:0", 9'000'000, 10'000'000);
  EnergyMeter meter(fake.path());
  fake.set("intel-rapl:0", 500'000);  // wrapped: 1 J to the top, then 0.5 J
  EXPECT_DOUBLE_EQ(*meter.joules(), 1.5);
}

TEST(EnergyMeter, SaysWhyWhenThereIsNothingToRead) {
  EnergyMeter absent("/nonexistent/powercap");
  EXPECT_FALSE(absent.available());
  EXPECT_FALSE(absent.joules());
  EXPECT_NE(absent.unavailable_reason().find("absent"), std::string::npos);

  FakePowercap fake;
  fs::create_directories(fake.path() + "/intel-rapl:0");  // a zone without readable counters
  EnergyMeter unreadable(fake.path());
  EXPECT_FALSE(unreadable.available());
  EXPECT_NE(unreadable.unavailable_reason().find("not readable"), std::string::npos)
      << unreadable.unavailable_reason();
}

TEST(PowerSampler, AveragesWattsOverIntervalsOfAtLeastTheMinimum) {
  FakePowercap fake;
  fake.zone("intel-rapl:0", 0, 1'000'000'000);
  using namespace std::chrono_literals;
  PowerSampler power(fake.path(), 500ms);
  const auto t0 = PowerSampler::Clock::time_point{} + 100s;
  EXPECT_FALSE(power.watts(t0));  // one sample is no interval
  fake.set("intel-rapl:0", 30'000'000);
  EXPECT_FALSE(power.watts(t0 + 100ms));  // too soon: still nothing
  EXPECT_DOUBLE_EQ(*power.watts(t0 + 2s), 15.0);  // 30 J in 2 s
  fake.set("intel-rapl:0", 40'000'000);
  EXPECT_DOUBLE_EQ(*power.watts(t0 + 2s + 100ms), 15.0);  // too soon: the last figure
  EXPECT_DOUBLE_EQ(*power.watts(t0 + 3s), 10.0);
}

TEST(PowerSampler, NotAvailableIsNoNumber) {
  PowerSampler power("/nonexistent/powercap");
  EXPECT_FALSE(power.available());
  EXPECT_FALSE(power.watts());
}

}  // namespace
}  // namespace herd
