// Plan files and the plan folder: a stored plan reads back bit for bit, the key changes with every
// input, damaged files are rebuilt, the size cap evicts the least recently used plan, and two
// processes asking for the same plan build it once.

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan_cache.hpp"
#include "stages/integrate/plan_file.hpp"

namespace azflow::integrate {
namespace {

namespace fs = std::filesystem;

Poni small_poni() {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, 60, 80};
  p.dist_m = 0.05;
  p.poni1_m = 0.0031;
  p.poni2_m = 0.0042;
  p.rot1_rad = 0.1;
  p.wavelength_m = 1e-10;
  return p;
}

IntegrationSettings settings_1d() {
  IntegrationSettings s;
  s.npt_rad = 64;
  s.dummy = 65535.0;
  s.polarization_factor = 0.9;
  s.error_model = ErrorModel::kPoisson;
  return s;
}

Corrections corrections_with_all() {
  const std::size_t n = 60 * 80;
  Corrections c;
  c.mask.assign(n, 0);
  for (std::size_t p = 0; p < n; p += 37) c.mask[p] = 1;
  c.dark.assign(n, 2.0f);
  c.flat.assign(n, 1.0f);
  c.flat[5] = 0.0f;  // an invalid pixel: Plan::invalid() non-empty
  for (std::size_t p = 0; p < n; ++p) c.dark[p] += static_cast<float>(p % 7);
  return c;
}

/// A per-test folder, removed at the end.
class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() / ("azflow_plan_cache_" + std::to_string(::getpid()) + "_" +
                                           std::to_string(++counter_))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

template <class T>
void expect_same_bits(std::span<const T> a, std::span<const T> b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  if (!a.empty()) {
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(T)), 0) << what;
  }
}

template <class T>
void expect_same_bits(const std::vector<T>& a, const std::vector<T>& b, const char* what) {
  expect_same_bits(std::span<const T>(a), std::span<const T>(b), what);
}

std::vector<char> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void expect_identical(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  EXPECT_EQ(a.bins(), b.bins());
  const IntegrationSettings &sa = a.settings(), &sb = b.settings();
  EXPECT_EQ(sa.unit, sb.unit);
  EXPECT_EQ(sa.npt_rad, sb.npt_rad);
  EXPECT_EQ(sa.npt_azim, sb.npt_azim);
  EXPECT_EQ(sa.radial_range, sb.radial_range);
  EXPECT_EQ(sa.azimuth_range_deg, sb.azimuth_range_deg);
  EXPECT_EQ(sa.azimuthal_unit, sb.azimuthal_unit);
  EXPECT_EQ(sa.split, sb.split);
  EXPECT_EQ(sa.correct_solid_angle, sb.correct_solid_angle);
  EXPECT_EQ(sa.polarization_factor, sb.polarization_factor);
  EXPECT_EQ(sa.dummy, sb.dummy);
  EXPECT_EQ(sa.delta_dummy, sb.delta_dummy);
  EXPECT_EQ(sa.normalization_factor, sb.normalization_factor);
  EXPECT_EQ(sa.error_model, sb.error_model);
  expect_same_bits(a.radial_centers(), b.radial_centers(), "radial_centers");
  expect_same_bits(a.radial_edges(), b.radial_edges(), "radial_edges");
  expect_same_bits(a.azimuthal_centers(), b.azimuthal_centers(), "azimuthal_centers");
  expect_same_bits(a.azimuthal_edges(), b.azimuthal_edges(), "azimuthal_edges");
  expect_same_bits(a.csr_indptr(), b.csr_indptr(), "csr_indptr");
  expect_same_bits(a.csr_indices(), b.csr_indices(), "csr_indices");
  expect_same_bits(a.csr_weights(), b.csr_weights(), "csr_weights");
  expect_same_bits(a.pixel_ptr(), b.pixel_ptr(), "pixel_ptr");
  expect_same_bits(a.pixel_bins(), b.pixel_bins(), "pixel_bins");
  expect_same_bits(a.pixel_weights(), b.pixel_weights(), "pixel_weights");
  expect_same_bits(a.pixel_bin(), b.pixel_bin(), "pixel_bin");
  expect_same_bits(a.normalization(), b.normalization(), "normalization");
  expect_same_bits(a.dark(), b.dark(), "dark");
  expect_same_bits(a.invalid(), b.invalid(), "invalid");
  expect_same_bits(a.static_sums().entries, b.static_sums().entries, "entries");
  expect_same_bits(a.static_sums().count, b.static_sums().count, "count");
  expect_same_bits(a.static_sums().normalization, b.static_sums().normalization, "sum norm");
  expect_same_bits(a.static_sums().dark, b.static_sums().dark, "sum dark");
}

TEST(PlanFile, RoundTripIsBitIdenticalToAFreshPlan) {
  IntegrationSettings cake;
  cake.npt_rad = 40;
  cake.npt_azim = 18;
  cake.split = PixelSplit::kBBox;
  cake.unit = RadialUnit::k2Th_deg;
  cake.azimuth_range_deg = std::pair{150.0, -150.0};  // the sector across +-180 deg
  IntegrationSettings ranged = settings_1d();
  ranged.radial_range = std::pair{1.0, 20.0};
  ranged.delta_dummy = 0.5;
  ranged.normalization_factor = 3.5;
  const std::vector<std::pair<IntegrationSettings, Corrections>> cases = {
      {settings_1d(), corrections_with_all()}, {cake, {}}, {ranged, corrections_with_all()}};
  TempDir dir;
  for (const auto& [settings, corrections] : cases) {
    const Poni poni = small_poni();
    const std::string key = plan_key_text(poni, settings, corrections);
    const auto fresh = Plan::build(Geometry(poni), settings, corrections);
    const fs::path file = dir.path() / "p.plan";
    write_plan_file(file, *fresh, key);
    const PlanFileRead read = read_plan_file(file, key);
    ASSERT_TRUE(read.plan) << read.problem;
    EXPECT_EQ(read.problem, "");
    EXPECT_FALSE(fresh->mapped());
    EXPECT_TRUE(read.plan->mapped());  // its large arrays are the file's mapped pages
    expect_identical(*fresh, *read.plan);
    // written again from the mapped plan, the file is the same bytes; the mapping outlives the
    // file's name (another process may replace or evict it meanwhile)
    const fs::path again = dir.path() / "again.plan";
    write_plan_file(again, *read.plan, key);
    EXPECT_EQ(read_bytes(again), read_bytes(file));
    fs::remove(file);
    fs::remove(again);
    expect_identical(*fresh, *read.plan);

    // the same frame integrated with both gives the same sums, bit for bit
    std::vector<std::uint16_t> frame(fresh->pixels());
    for (std::size_t p = 0; p < frame.size(); ++p) frame[p] = static_cast<std::uint16_t>(p % 97);
    const FrameView view{reinterpret_cast<const std::byte*>(frame.data()), DType::kUint16, 60, 80};
    BinSums a, b;
    CpuIntegrator(fresh).integrate(view, a);
    CpuIntegrator(read.plan).integrate(view, b);
    expect_same_bits(a.signal, b.signal, "signal");
    expect_same_bits(a.normalization, b.normalization, "sum normalization");
    expect_same_bits(a.variance, b.variance, "variance");
  }
}

TEST(PlanFile, KeyChangesWhenAnyInputChanges) {
  const Poni poni = small_poni();
  const IntegrationSettings s = settings_1d();
  const Corrections c = corrections_with_all();
  const std::string base = plan_key_text(poni, s, c);
  EXPECT_EQ(base, plan_key_text(small_poni(), settings_1d(), corrections_with_all()));
  EXPECT_EQ(plan_key_hash(base).size(), 64u);

  std::vector<std::pair<std::string, std::string>> variants;
  auto with_poni = [&](const char* name, const std::function<void(Poni&)>& change) {
    Poni p = poni;
    change(p);
    variants.emplace_back(name, plan_key_text(p, s, c));
  };
  auto with_settings = [&](const char* name, const std::function<void(IntegrationSettings&)>& f) {
    IntegrationSettings t = s;
    f(t);
    variants.emplace_back(name, plan_key_text(poni, t, c));
  };
  auto with_corrections = [&](const char* name, const std::function<void(Corrections&)>& f) {
    Corrections d = c;
    f(d);
    variants.emplace_back(name, plan_key_text(poni, s, d));
  };
  with_poni("dist", [](Poni& p) { p.dist_m = std::nextafter(p.dist_m, 1.0); });
  with_poni("poni1", [](Poni& p) { p.poni1_m += 1e-6; });
  with_poni("poni2", [](Poni& p) { p.poni2_m += 1e-6; });
  with_poni("rot1", [](Poni& p) { p.rot1_rad += 1e-9; });
  with_poni("rot2", [](Poni& p) { p.rot2_rad = 0.01; });
  with_poni("rot3", [](Poni& p) { p.rot3_rad = 0.01; });
  with_poni("wavelength", [](Poni& p) { p.wavelength_m = 1.1e-10; });
  with_poni("no wavelength", [](Poni& p) { p.wavelength_m.reset(); });
  with_poni("pixel1", [](Poni& p) { p.detector.pixel1_m = 75e-6; });
  with_poni("detector", [](Poni& p) { p.detector.name = "Eiger4M"; });
  with_poni("module gaps", [](Poni& p) { p.detector.gap_rows = 2; });
  with_settings("unit", [](IntegrationSettings& t) { t.unit = RadialUnit::kQ_A; });
  with_settings("npt", [](IntegrationSettings& t) { t.npt_rad = 65; });
  with_settings("npt_azim", [](IntegrationSettings& t) { t.npt_azim = 4; });
  with_settings("radial_range", [](IntegrationSettings& t) {
    t.radial_range = std::pair{0.0, 9.0};
  });
  with_settings("azimuth_range", [](IntegrationSettings& t) {
    t.azimuth_range_deg = std::pair{-90.0, 90.0};
  });
  with_settings("azimuthal_unit",
                [](IntegrationSettings& t) { t.azimuthal_unit = AzimuthalUnit::kChiRad; });
  with_settings("split", [](IntegrationSettings& t) { t.split = PixelSplit::kBBox; });
  with_settings("solid angle", [](IntegrationSettings& t) { t.correct_solid_angle = false; });
  with_settings("polarization", [](IntegrationSettings& t) { t.polarization_factor = 0.95; });
  with_settings("dummy", [](IntegrationSettings& t) { t.dummy = 4294967295.0; });
  with_settings("delta_dummy", [](IntegrationSettings& t) { t.delta_dummy = 0.1; });
  with_settings("normalization", [](IntegrationSettings& t) { t.normalization_factor = 2.0; });
  with_settings("error model", [](IntegrationSettings& t) { t.error_model = ErrorModel::kNone; });
  with_corrections("mask pixel", [](Corrections& d) { d.mask[1] = 1; });
  with_corrections("no mask", [](Corrections& d) { d.mask.clear(); });
  with_corrections("dark value", [](Corrections& d) { d.dark[10] += 1.0f; });
  with_corrections("no dark", [](Corrections& d) { d.dark.clear(); });
  with_corrections("flat value", [](Corrections& d) { d.flat[3] = 0.5f; });
  for (std::size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(variants[i].second, base) << variants[i].first;
    EXPECT_NE(plan_key_hash(variants[i].second), plan_key_hash(base)) << variants[i].first;
    for (std::size_t j = 0; j < i; ++j)
      EXPECT_NE(variants[i].second, variants[j].second)
          << variants[i].first << " vs " << variants[j].first;
  }
}

/// A cache whose builds are counted.
struct CountingBuild {
  Poni poni = small_poni();
  IntegrationSettings settings = settings_1d();
  int builds = 0;
  std::string key() const { return plan_key_text(poni, settings, {}); }
  std::function<std::shared_ptr<const Plan>()> fn() {
    return [this] {
      ++builds;
      return Plan::build(Geometry(poni), settings);
    };
  }
};

void overwrite_at(const fs::path& file, std::size_t offset, const std::string& bytes) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(PlanCache, DamagedFilesAreDetectedAndRebuilt) {
  TempDir dir;
  PlanCache cache({dir.path()});
  CountingBuild b;
  const CachedPlan first = cache.get(b.key(), b.fn());
  ASSERT_TRUE(first.built);
  EXPECT_EQ(first.note, "");
  const fs::path file = dir.path() / (first.key_hash + ".plan");
  ASSERT_TRUE(fs::exists(file));
  const auto size = fs::file_size(file);
  EXPECT_FALSE(cache.get(b.key(), b.fn()).built);
  EXPECT_EQ(b.builds, 1);

  const std::vector<std::pair<std::string, std::function<void()>>> damages = {
      {"checksum", [&] { overwrite_at(file, size / 2, "\x5a\xa5"); }},
      {"truncated", [&] { fs::resize_file(file, size - 100); }},
      {"truncated", [&] { fs::resize_file(file, 10); }},
      {"empty", [&] { fs::resize_file(file, 0); }},
      {"magic", [&] { overwrite_at(file, 0, "NOTAPLAN"); }},
      {"format version", [&] { overwrite_at(file, 8, std::string("\x07\0\0\0", 4)); }},
  };
  int expected_builds = 1;
  for (const auto& [why, damage] : damages) {
    damage();
    const CachedPlan again = cache.get(b.key(), b.fn());
    EXPECT_TRUE(again.built) << why;
    EXPECT_NE(again.note.find(why), std::string::npos) << why << ": " << again.note;
    ASSERT_TRUE(again.plan);
    expect_identical(*first.plan, *again.plan);
    EXPECT_EQ(b.builds, ++expected_builds) << why;
    EXPECT_FALSE(cache.get(b.key(), b.fn()).built) << why << ": the rebuilt file is reused";
    EXPECT_EQ(fs::file_size(file), size);
  }
}

TEST(PlanCache, AFileOfAnotherKeyUnderTheSameNameIsNotReused) {
  TempDir dir;
  PlanCache cache({dir.path()});
  CountingBuild a, b;
  b.settings.npt_rad = 99;
  const CachedPlan pa = cache.get(a.key(), a.fn());
  const CachedPlan pb = cache.get(b.key(), b.fn());
  // b's name now holds a's plan: as if two keys had the same hash
  fs::copy_file(dir.path() / (pa.key_hash + ".plan"), dir.path() / (pb.key_hash + ".plan"),
                fs::copy_options::overwrite_existing);
  const CachedPlan again = cache.get(b.key(), b.fn());
  EXPECT_TRUE(again.built);
  EXPECT_NE(again.note.find("another key"), std::string::npos) << again.note;
  EXPECT_EQ(again.plan->bins(), 99u);
}

TEST(PlanCache, EvictsTheLeastRecentlyUsedPlansBeyondTheCap) {
  TempDir dir;
  CountingBuild a, b, c;
  b.settings.npt_rad = 65;
  c.settings.npt_rad = 66;
  std::uintmax_t one = 0;
  {
    PlanCache probe({dir.path()});
    const CachedPlan p = probe.get(a.key(), a.fn());
    one = fs::file_size(dir.path() / (p.key_hash + ".plan"));
  }
  // room for two plans (their sizes differ by a few bins), not three
  PlanCache cache({dir.path(), one * 2 + one / 2});
  const auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); };
  pause();
  const std::string hb = cache.get(b.key(), b.fn()).key_hash;
  pause();
  const std::string ha = cache.get(a.key(), a.fn()).key_hash;  // a hit: a is now newer than b
  EXPECT_EQ(a.builds, 1);
  pause();
  const std::string hc = cache.get(c.key(), c.fn()).key_hash;
  EXPECT_TRUE(fs::exists(dir.path() / (ha + ".plan")));
  EXPECT_FALSE(fs::exists(dir.path() / (hb + ".plan"))) << "b was the least recently used";
  EXPECT_TRUE(fs::exists(dir.path() / (hc + ".plan")));
  std::uintmax_t total = 0;
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.path().extension() == ".plan") total += e.file_size();
  EXPECT_LE(total, cache.options().max_bytes);
  // a plan larger than the cap is kept alone
  PlanCache tiny({dir.path(), 1});
  const std::string hb2 = tiny.get(b.key(), b.fn()).key_hash;
  EXPECT_EQ(b.builds, 2);
  EXPECT_TRUE(fs::exists(dir.path() / (hb2 + ".plan")));
  EXPECT_FALSE(fs::exists(dir.path() / (ha + ".plan")));
  EXPECT_FALSE(fs::exists(dir.path() / (hc + ".plan")));
}

TEST(PlanCache, TwoProcessesAskingAtOnceBuildThePlanOnce) {
  TempDir dir;
  const fs::path counter = dir.path() / "builds.txt";
  const fs::path plans = dir.path() / "plans";
  std::vector<pid_t> children;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      CountingBuild b;
      PlanCache cache({plans});
      const CachedPlan p = cache.get(b.key(), [&] {
        std::ofstream(counter, std::ios::app) << "built by " << ::getpid() << "\n";
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the other one waits
        return Plan::build(Geometry(b.poni), b.settings);
      });
      ::_exit(p.plan && p.plan->bins() == 64 && p.note.empty() ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::ifstream in(counter);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(lines.size(), 1u) << "one build for two processes";
  int files = 0;
  for (const auto& e : fs::directory_iterator(plans)) files += e.path().extension() == ".plan";
  EXPECT_EQ(files, 1);
}

TEST(PlanCache, ABackgroundStoreHoldsTheLockUntilTheFileIsInPlace) {
  TempDir dir;
  CountingBuild b;
  std::string note = "unset";
  PlanCacheOptions options{dir.path()};
  options.store_in_background = true;
  options.on_background_note = [&](const std::string& n) { note = n; };
  PlanCache background(options);
  const CachedPlan first = background.get(b.key(), b.fn());
  EXPECT_TRUE(first.built);
  // another user of the folder waits for the store, then reads the file instead of building
  PlanCache other({dir.path()});
  CountingBuild b2;
  const CachedPlan second = other.get(b2.key(), b2.fn());
  EXPECT_FALSE(second.built) << second.note;
  EXPECT_EQ(b2.builds, 0);
  ASSERT_TRUE(second.plan);
  expect_identical(*first.plan, *second.plan);
  EXPECT_EQ(note, "unset") << "no failure reported";
}

TEST(PlanCache, AnUnusableFolderStillGivesThePlan) {
  TempDir dir;
  std::ofstream(dir.path() / "file") << "not a folder";
  PlanCache cache({dir.path() / "file" / "plans"});
  CountingBuild b;
  const CachedPlan p = cache.get(b.key(), b.fn());
  ASSERT_TRUE(p.plan);
  EXPECT_TRUE(p.built);
  EXPECT_NE(p.note, "");
  EXPECT_EQ(p.plan->bins(), 64u);
}

}  // namespace
}  // namespace azflow::integrate
