// Import of pyFAI integration configs (reduce::read_pyfai_config via ctl/pyfai_config): the
// fixtures in tests/ctl/fixtures were written by pyFAI 0.21's own code (make_pyfai_configs.py),
// each NAME.json with a NAME.pyfai.json that says how pyFAI's Worker integrates with it. The tests
// check the imported settings against what pyFAI read, and that `azflow integrate` with the
// imported settings as explicit options gives pyFAI's Worker result, as does `azflow integrate
// --config` of the file itself; and that what azflow cannot honour is refused, naming the key.

#include "ctl/pyfai_config.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "daemon/job_spec.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"
#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::Error;
using azflow::ErrorCategory;
using azflow::ctl::job_spec_from_pyfai_config;
using azflow::daemon::JobSpec;
using azflow::testing::H5File;
using azflow::testing::quote;
using nlohmann::json;

const fs::path kFixtures = fs::path(AZFLOW_CTL_FIXTURES);
const fs::path kCliFixtures = fs::path(AZFLOW_CLI_FIXTURES);

json read_json(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

/// An optional number as the sidecar has it (null = none).
std::optional<double> opt(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<double>(j.get<double>());
}

std::optional<std::pair<double, double>> opt_range(const json& j) {
  if (j.is_null()) return std::nullopt;
  return std::pair(j[0].get<double>(), j[1].get<double>());
}

/// "mean(A)" as the Worker records an applied dark/flat -> A resolved against the fixtures.
std::string applied_image(const json& j) {
  if (j.is_null()) return "";
  std::string s = j.get<std::string>();
  EXPECT_EQ(s.rfind("mean(", 0), 0u) << s;
  s = s.substr(5, s.size() - 6);
  const std::size_t sep = s.find("::");
  return (kFixtures / s.substr(0, sep)).lexically_normal().string() +
         (sep == std::string::npos ? "" : s.substr(sep));
}

class PyFaiConfigFixture : public ::testing::TestWithParam<std::string> {};

/// The imported settings are the ones pyFAI's Worker integrates with.
TEST_P(PyFaiConfigFixture, SettingsAreWhatPyFaiRead) {
  const std::string name = GetParam();
  const JobSpec spec = job_spec_from_pyfai_config(kFixtures / (name + ".json"));
  const json want = read_json(kFixtures / (name + ".pyfai.json"));
  const auto& s = spec.settings;

  EXPECT_EQ(s.npt_rad, want["nbpt_rad"].get<std::size_t>());
  EXPECT_EQ(s.npt_azim, want["nbpt_azim"].get<std::size_t>());
  EXPECT_EQ(s.is_2d(), want["do_2D"].get<bool>());
  EXPECT_EQ(azflow::integrate::unit_name(s.unit), want["unit"].get<std::string>());
  EXPECT_EQ(azflow::integrate::split_name(s.split), want["split"].get<std::string>());
  EXPECT_EQ(s.correct_solid_angle, want["correct_solid_angle"].get<bool>());
  EXPECT_EQ(s.polarization_factor, opt(want["polarization_factor"]));
  EXPECT_FALSE(spec.dummy_auto);
  EXPECT_EQ(s.dummy, opt(want["dummy"]));
  EXPECT_EQ(s.delta_dummy, opt(want["delta_dummy"]));
  EXPECT_EQ(s.radial_range, opt_range(want["radial_range"]));
  EXPECT_EQ(s.azimuth_range_deg, opt_range(want["azimuth_range"]));
  EXPECT_EQ(azflow::integrate::error_model_name(s.error_model),
            want["error_model"].is_null() ? "none" : want["error_model"].get<std::string>());
  EXPECT_EQ(s.normalization_factor, opt(want["normalization_factor"]).value_or(1.0));
  EXPECT_EQ(!spec.mask_path.empty(), want["mask"].get<bool>());
  if (!spec.mask_path.empty()) {
    EXPECT_TRUE(fs::exists(spec.mask_path.substr(0, spec.mask_path.find("::")))) << spec.mask_path;
  }
  EXPECT_EQ(spec.dark_path, applied_image(want["dark"]));
  EXPECT_EQ(spec.flat_path, applied_image(want["flat"]));

  const json& g = want["geometry"];
  const azflow::integrate::Poni poni = azflow::integrate::parse_poni(spec.poni_text, "import");
  EXPECT_DOUBLE_EQ(poni.dist_m, g["dist"].get<double>());
  EXPECT_DOUBLE_EQ(poni.poni1_m, g["poni1"].get<double>());
  EXPECT_DOUBLE_EQ(poni.poni2_m, g["poni2"].get<double>());
  EXPECT_DOUBLE_EQ(poni.rot1_rad, g["rot1"].get<double>());
  EXPECT_DOUBLE_EQ(poni.rot2_rad, g["rot2"].get<double>());
  EXPECT_DOUBLE_EQ(poni.rot3_rad, g["rot3"].get<double>());
  ASSERT_TRUE(poni.wavelength_m.has_value());
  EXPECT_DOUBLE_EQ(*poni.wavelength_m, g["wavelength"].get<double>());
  EXPECT_DOUBLE_EQ(poni.detector.pixel1_m, g["pixel1"].get<double>());
  EXPECT_DOUBLE_EQ(poni.detector.pixel2_m, g["pixel2"].get<double>());
  EXPECT_EQ(poni.detector.rows, 195u);  // the Pilatus 100k of every fixture
  EXPECT_EQ(poni.detector.cols, 487u);
  EXPECT_TRUE(fs::path(spec.poni_path).is_absolute()) << spec.poni_path;

  // With datasets added the spec is a valid enqueue request, unchanged by the round trip.
  JobSpec full = spec;
  full.datasets = {(kCliFixtures / "pilatus_master.h5").string()};
  const JobSpec back = azflow::daemon::job_spec_from_json(azflow::daemon::to_json(full));
  EXPECT_EQ(azflow::daemon::to_json(back), azflow::daemon::to_json(full));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PyFaiConfigFixture,
                         ::testing::Values("gui_1d", "gui_2d", "worker_get_config", "legacy_v1"));

/// Exit code and combined stdout + stderr of one command.
/// `azflow integrate` options that say explicitly what `spec` says.
std::string explicit_options(const JobSpec& spec, const std::string& poni_file) {
  const auto& s = spec.settings;
  std::ostringstream o;
  o.precision(17);
  o << " --poni " << quote(poni_file);
  if (s.is_2d()) {
    o << " --npt-rad " << s.npt_rad << " --npt-azim " << s.npt_azim;
  } else {
    o << " --npt " << s.npt_rad;
  }
  o << " --unit " << quote(std::string(azflow::integrate::unit_name(s.unit))) << " --split "
    << azflow::integrate::split_name(s.split) << " --error-model "
    << azflow::integrate::error_model_name(s.error_model);
  if (s.radial_range)
    o << " --radial-range " << s.radial_range->first << " " << s.radial_range->second;
  if (s.azimuth_range_deg) {
    o << " --azimuth-range " << s.azimuth_range_deg->first << " " << s.azimuth_range_deg->second;
  }
  if (!s.correct_solid_angle) o << " --no-solid-angle";
  if (s.polarization_factor) o << " --polarization-factor " << *s.polarization_factor;
  if (s.dummy) {
    o << " --dummy " << *s.dummy;
  } else {
    o << " --no-dummy";
  }
  if (s.delta_dummy) o << " --delta-dummy " << *s.delta_dummy;
  o << " --normalization-factor " << s.normalization_factor;
  if (!spec.mask_path.empty()) o << " --mask " << quote(spec.mask_path);
  if (!spec.dark_path.empty()) o << " --dark " << quote(spec.dark_path);
  if (!spec.flat_path.empty()) o << " --flat " << quote(spec.flat_path);
  return o.str();
}

/// Flattens a JSON array of numbers or of arrays of numbers.
std::vector<double> flat(const json& j) {
  std::vector<double> out;
  for (const json& v : j) {
    if (v.is_array()) {
      for (const json& w : v) out.push_back(w.get<double>());
    } else {
      out.push_back(v.get<double>());
    }
  }
  return out;
}

void expect_close(const std::vector<double>& ref, const std::vector<double>& got,
                  const std::vector<double>& count, const char* what) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  std::vector<double> errors;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (count[i] <= 0) continue;
    errors.push_back(ref[i] == 0 ? std::abs(got[i]) : std::abs(got[i] - ref[i]) / std::abs(ref[i]));
  }
  ASSERT_GT(errors.size(), ref.size() / 4) << what;
  std::sort(errors.begin(), errors.end());
  EXPECT_LE(errors.back(), 1e-3) << what << ": max relative error";
  EXPECT_LE(errors[errors.size() / 2], 1e-5) << what << ": median relative error";
}

class PyFaiConfigResult : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("azflow_pyfai_" + std::to_string(getpid()) + "_" +
                                        std::to_string(std::hash<std::string>{}(GetParam())));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

/// Integrating frame 0 with the imported settings (given to `azflow integrate` as explicit
/// options) gives what pyFAI's Worker computed from the same config file.
TEST_P(PyFaiConfigResult, IntegratesAsPyFaiWorker) {
  const std::string name = GetParam();
  const JobSpec spec = job_spec_from_pyfai_config(kFixtures / (name + ".json"));
  const json want = read_json(kFixtures / (name + ".pyfai.json"));
  ASSERT_TRUE(want.contains("result"));
  const fs::path poni = dir_ / "imported.poni";
  std::ofstream(poni) << spec.poni_text;
  const fs::path output = dir_ / "out.h5";
  const azflow::testing::CommandResult r = azflow::testing::run_command(
      std::string(AZFLOW_BIN) + " integrate " +
      quote((kCliFixtures / "pilatus_master.h5").string()) + explicit_options(spec, poni) +
      " --frames 0:1 --threads 2 --quiet -o " + quote(output.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  H5File f(output.string());
  const json& res = want["result"];
  const std::vector<double> count = flat(res["count"]);  // > 0: bins with pixels
  expect_close(flat(res["I"]), f.doubles("/entry/integrate/I"), count, "I");
  if (res.contains("sigma")) {
    expect_close(flat(res["sigma"]), f.doubles("/entry/integrate/I_errors"), count, "sigma");
  }
  const auto axes = f.string_attr("/entry/integrate", "axes");
  ASSERT_FALSE(axes.empty());
  const std::vector<double> radial = f.doubles("/entry/integrate/" + axes.back());
  const std::vector<double> radial_ref = flat(res["radial"]);
  ASSERT_EQ(radial.size(), radial_ref.size());
  const double width = radial_ref[1] - radial_ref[0];
  for (std::size_t i = 0; i < radial.size(); ++i) {
    EXPECT_NEAR(radial[i], radial_ref[i], 1e-3 * width) << i;
  }
}

/// `azflow integrate --config NAME.json` (the file as pyFAI wrote it, its relative paths
/// resolved against its folder) gives pyFAI's Worker result, and records the config it read.
TEST_P(PyFaiConfigResult, IntegrateConfigGivesPyFaiWorkerResult) {
  const std::string name = GetParam();
  const json want = read_json(kFixtures / (name + ".pyfai.json"));
  const fs::path output = dir_ / "config.h5";
  const azflow::testing::CommandResult r = azflow::testing::run_command(
      std::string(AZFLOW_BIN) + " integrate " +
      quote((kCliFixtures / "pilatus_master.h5").string()) + " --config " +
      quote((kFixtures / (name + ".json")).string()) + " --frames 0:1 --threads 2 --quiet -o " +
      quote(output.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  H5File f(output.string());
  const json& res = want["result"];
  const std::vector<double> count = flat(res["count"]);
  expect_close(flat(res["I"]), f.doubles("/entry/integrate/I"), count, "I");
  if (res.contains("sigma")) {
    expect_close(flat(res["sigma"]), f.doubles("/entry/integrate/I_errors"), count, "sigma");
  }
  const json settings =
      json::parse(H5File(output.string()).strings("/entry/process/configuration/data")[0]);
  EXPECT_EQ(settings.value("config_file", ""), (kFixtures / (name + ".json")).string());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PyFaiConfigResult,
                         ::testing::Values("gui_1d", "gui_2d", "legacy_v1"));

/// --config replaces --poni and the integration options: given together they are a usage error
/// naming both, and without --poni or --config the input has no geometry.
TEST(PyFaiConfigCli, ConfigExcludesTheOptionsItSets) {
  const std::string base = std::string(AZFLOW_BIN) + " integrate " +
                           quote((kCliFixtures / "pilatus_master.h5").string()) + " -o " +
                           quote((fs::temp_directory_path() / "azflow_never.h5").string());
  const std::string config = " --config " + quote((kFixtures / "gui_1d.json").string());
  for (const std::string& option : std::vector<std::string>{
           "--npt 100", "--poni " + quote((kCliFixtures / "pilatus.poni").string()),
           "--unit 2th_deg", "--mask " + quote((kCliFixtures / "pilatus.poni").string()),
           "--no-dummy"}) {
    const azflow::testing::CommandResult r =
        azflow::testing::run_command(base + config + " " + option);
    EXPECT_EQ(r.code, 2) << option << ": " << r.output;
    EXPECT_NE(r.output.find("--config"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(option.substr(0, option.find(' '))), std::string::npos) << r.output;
  }
  const azflow::testing::CommandResult none = azflow::testing::run_command(base);
  EXPECT_EQ(none.code, 2) << none.output;
  EXPECT_NE(none.output.find("--poni (or --config) is required"), std::string::npos) << none.output;
  const azflow::testing::CommandResult bad = azflow::testing::run_command(
      base + " --config " + quote((kFixtures / "unsupported_monitor.json").string()));
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("monitor_name"), std::string::npos) << bad.output;
}

/// Imports gui_1d.json edited by a test (written to a temporary directory).
class PyFaiConfigEdit : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_pyfai_edit_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// gui_1d.json with its relative paths made absolute, edited by `edit`, written to a file.
  fs::path write(const std::function<void(json&)>& edit, const std::string& file = "c.json") {
    json j = read_json(kFixtures / "gui_1d.json");
    for (const char* key : {"mask_file"}) {
      j[key] = (kFixtures / j[key].get<std::string>()).lexically_normal().string();
    }
    for (const char* key : {"dark_current", "flat_field"}) {
      j[key][0] = (kFixtures / j[key][0].get<std::string>()).lexically_normal().string();
    }
    edit(j);
    const fs::path path = dir_ / file;
    std::ofstream(path) << j.dump(2);
    return path;
  }

  JobSpec import(const std::function<void(json&)>& edit) {
    return job_spec_from_pyfai_config(write(edit));
  }

  /// The error message of importing the edited config; fails the test if it imports.
  std::string error(const std::function<void(json&)>& edit) {
    const fs::path path = write(edit);
    try {
      (void)job_spec_from_pyfai_config(path);
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kConfig) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "imported without error";
    return "";
  }

  fs::path dir_;
};

void expect_names(const std::string& message, const std::string& key) {
  EXPECT_NE(message.find("'" + key + "'"), std::string::npos) << message;
}

TEST(PyFaiConfigErrors, MonitorNameIsRefused) {
  const fs::path path = kFixtures / "unsupported_monitor.json";
  try {
    (void)job_spec_from_pyfai_config(path);
    FAIL() << "imported a config with a monitor_name";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    expect_names(e.what(), "monitor_name");
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

TEST_F(PyFaiConfigEdit, UnknownKeyIsNamed) {
  expect_names(error([](json& j) { j["sigma_clip_thresold"] = 3; }), "sigma_clip_thresold");
}

TEST_F(PyFaiConfigEdit, FullPixelSplittingIsImported) {
  for (const json& method : {json{"full", "csr", "cython"}, json("full_csr"), json("full"),
                             json{1, "full", "histogram", "cython", nullptr}}) {
    SCOPED_TRACE(method.dump());
    const JobSpec spec = import([&](json& j) { j["method"] = method; });
    EXPECT_EQ(spec.settings.split, azflow::integrate::PixelSplit::kFull);
  }
  // Pseudo splitting, and old names that pyFAI 0.21's Worker reads as no splitting, are refused.
  expect_names(error([](json& j) { j["method"] = {"pseudo", "histogram", "cython"}; }), "method");
  expect_names(error([](json& j) { j["method"] = "splitpixel"; }), "method");
}

/// Method names of version 1/2 files resolve to the splitting pyFAI 0.21 resolves them to
/// (methods.pyfai.json).
TEST_F(PyFaiConfigEdit, MethodNamesSplitAsInPyFai) {
  const json table = read_json(kFixtures / "methods.pyfai.json");
  ASSERT_GE(table.size(), 10u);
  for (const auto& [name, split] : table.items()) {
    SCOPED_TRACE(name);
    const JobSpec spec = import([&](json& j) { j["method"] = name; });
    EXPECT_EQ(azflow::integrate::split_name(spec.settings.split), split.get<std::string>());
  }
}

TEST_F(PyFaiConfigEdit, UnsupportedUnitIsNamed) {
  // d*2_A^-2, the unit this test used before, is supported since issue 17 (every pyFAI 0.21 unit).
  expect_names(error([](json& j) { j["unit"] = "q_pm^-1"; }), "unit");
}

TEST_F(PyFaiConfigEdit, SeveralDarkFilesAreRefusedUnlessSwitchedOff) {
  const std::string dark = (kCliFixtures / "pilatus_dark.npy").string();
  expect_names(error([&](json& j) { j["dark_current"] = {dark, dark}; }), "dark_current");
  expect_names(error([&](json& j) { j["flat_field"] = dark + "," + dark; }), "flat_field");
  const JobSpec off = import([&](json& j) {
    j["dark_current"] = {dark, dark};
    j["do_dark"] = false;
  });
  EXPECT_TRUE(off.dark_path.empty());
}

TEST_F(PyFaiConfigEdit, SwitchesTurnSettingsOff) {
  const JobSpec spec = import([](json& j) {
    j["do_mask"] = false;
    j["do_flat"] = false;
    j["do_polarization"] = false;
    j["do_dummy"] = false;
    j["do_radial_range"] = false;
    j["do_solid_angle"] = false;
    j["do_poisson"] = false;
  });
  EXPECT_TRUE(spec.mask_path.empty());
  EXPECT_FALSE(spec.use_file_mask);  // do_mask false drops the master file's pixel_mask too
  EXPECT_TRUE(spec.flat_path.empty());
  EXPECT_FALSE(spec.dark_path.empty());
  EXPECT_FALSE(spec.settings.polarization_factor.has_value());
  EXPECT_FALSE(spec.settings.dummy.has_value());
  EXPECT_FALSE(spec.settings.radial_range.has_value());
  EXPECT_FALSE(spec.settings.correct_solid_angle);
  EXPECT_EQ(spec.settings.error_model, azflow::integrate::ErrorModel::kNone);
}

TEST_F(PyFaiConfigEdit, RelativePathsAreRelativeToTheConfigFile) {
  const JobSpec spec = import([](json& j) { j["mask_file"] = "../m.npy::/x"; });
  EXPECT_EQ(spec.mask_path, (dir_.parent_path() / "m.npy").string() + "::/x");
}

TEST_F(PyFaiConfigEdit, OtherUnsupportedSettingsAreNamed) {
  expect_names(error([](json& j) { j["splineFile"] = "/some/distortion.spline"; }), "splineFile");
  expect_names(error([](json& j) {
                 j["do_2D"] = true;
                 j["nbpt_azim"] = 36;
                 j["chi_discontinuity_at_0"] = true;
               }),
               "chi_discontinuity_at_0");
  expect_names(error([](json& j) { j["error_model"] = "hybrid"; }), "error_model");
  expect_names(error([](json& j) { j["detector"] = "NoSuchDetector"; }), "detector");
  expect_names(error([](json& j) { j["nbpt_rad"] = -3; }), "nbpt_rad");
  expect_names(error([](json& j) { j["dark_current_image"] = "mean(a.edf,b.edf)"; }),
               "dark_current_image");
  expect_names(error([](json& j) { j["application"] = "pyfai-calib2"; }), "application");
  expect_names(error([](json& j) { j.erase("dist"); }), "dist");
}

TEST_F(PyFaiConfigEdit, PoniBlockAndPoniFile) {
  // a "poni" object (the geometry block of later pyFAI versions) instead of top-level keys
  const JobSpec block = import([](json& j) {
    json poni = json::object();
    for (const char* key : {"dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength",
                            "detector", "detector_config"}) {
      poni[key] = j[key];
      j.erase(key);
    }
    poni["poni_version"] = 2;
    j["poni"] = poni;
  });
  const JobSpec plain = import([](json&) {});
  EXPECT_EQ(block.poni_text, plain.poni_text);
  // a PONI file name; top-level keys override it (pyFAI's version-1 migration)
  const JobSpec file = import([](json& j) {
    for (const char* key : {"dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength",
                            "detector", "detector_config"}) {
      j.erase(key);
    }
    j["poni"] = (kCliFixtures / "pilatus.poni").string();
    j["rot3"] = 0.25;
  });
  const auto ref = azflow::integrate::read_poni(kCliFixtures / "pilatus.poni");
  const auto got = azflow::integrate::parse_poni(file.poni_text, "import");
  EXPECT_DOUBLE_EQ(got.dist_m, ref.dist_m);
  EXPECT_DOUBLE_EQ(got.poni2_m, ref.poni2_m);
  EXPECT_DOUBLE_EQ(got.rot3_rad, 0.25);
  EXPECT_EQ(got.detector.name, ref.detector.name);
  EXPECT_EQ(file.poni_path, (kCliFixtures / "pilatus.poni").string());
}

TEST(PyFaiConfigErrors, UnreadableOrMalformedFile) {
  const fs::path missing = kFixtures / "no_such_config.json";
  try {
    (void)job_spec_from_pyfai_config(missing);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  const fs::path bad = fs::temp_directory_path() / ("azflow_bad_" + std::to_string(getpid()));
  std::ofstream(bad) << "{\"nbpt_rad\": 10,";
  try {
    (void)job_spec_from_pyfai_config(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  fs::remove(bad);
}

}  // namespace

namespace {

/// A job spec as JSON without poni_path (which names the config file itself).
json spec_json(const fs::path& config) {
  json j = azflow::daemon::to_json(job_spec_from_pyfai_config(config));
  j.erase("poni_path");
  return j;
}

// WorkerConfig versions 4 and 5 (made from pyFAI 0.21's version-3 files by make_v4_v5_configs.py,
// following current pyFAI's migrations) import exactly as the version-3 file they came from.
TEST(PyFaiConfigVersions, Versions4And5ImportAsVersion3) {
  for (const char* name : {"gui_1d", "gui_2d"}) {
    SCOPED_TRACE(name);
    const json v3 = spec_json(kFixtures / (std::string(name) + ".json"));
    EXPECT_EQ(spec_json(kFixtures / (std::string(name) + "_v4.json")), v3);
    EXPECT_EQ(spec_json(kFixtures / (std::string(name) + "_v5.json")), v3);
  }
}

/// gui_2d_v5.json edited by `edit`, written next to the fixtures' temporary copy; returns the
/// import error, or "" if it imported.
std::string v5_error(const std::function<void(json&)>& edit) {
  json j = read_json(kFixtures / "gui_2d_v5.json");
  j["mask_file"] = (kFixtures / j["mask_file"].get<std::string>()).lexically_normal().string();
  edit(j);
  const fs::path path =
      fs::temp_directory_path() / ("azflow_v5_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << j.dump(2);
  std::string message;
  try {
    (void)job_spec_from_pyfai_config(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig) << e.what();
    message = e.what();
  }
  fs::remove(path);
  return message;
}

TEST(PyFaiConfigVersions, Version5SettingsAzflowCannotHonourAreNamed) {
  expect_names(v5_error([](json& j) { j["extra_options"] = {{"sparse", true}}; }), "extra_options");
  expect_names(v5_error([](json& j) {
                 j["polarization_description"] = {0.9, 0.5};
               }),
               "polarization_description");
  expect_names(v5_error([](json& j) { j["integrator_method"] = "sigma_clip_ng"; }),
               "integrator_method");
  expect_names(v5_error([](json& j) { j["integrator_class"] = "FiberIntegrator"; }),
               "integrator_class");
  expect_names(v5_error([](json& j) { j["version"] = 6; }), "version");
  EXPECT_EQ(v5_error([](json& j) { j["extra_options"] = json::object(); }), "");
  // polarization_description [factor, 0] is the factor
  json j = read_json(kFixtures / "gui_2d_v5.json");
  j["mask_file"] = nullptr;
  j["polarization_description"] = {0.95, 0.0};
  const fs::path path =
      fs::temp_directory_path() / ("azflow_v5p_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << j.dump(2);
  const JobSpec spec = job_spec_from_pyfai_config(path);
  fs::remove(path);
  ASSERT_TRUE(spec.settings.polarization_factor.has_value());
  EXPECT_DOUBLE_EQ(*spec.settings.polarization_factor, 0.95);
  EXPECT_TRUE(spec.mask_path.empty());
}

// integrator_method sigma_clip_ng with its extra_options (what azflow writes for --sigma-clip).
TEST(PyFaiConfigVersions, SigmaClipNgImportsWithItsOptions) {
  json j = read_json(kFixtures / "gui_1d_v5.json");
  j["mask_file"] = nullptr;
  j["integrator_method"] = "sigma_clip_ng";
  j["error_model"] = "no";
  j["extra_options"] = {{"thres", 3.5}, {"max_iter", 7}, {"error_model", "azimuthal"}};
  const fs::path path =
      fs::temp_directory_path() / ("azflow_v5sc_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << j.dump(2);
  const JobSpec spec = job_spec_from_pyfai_config(path);
  ASSERT_TRUE(spec.settings.sigma_clip.has_value());
  EXPECT_DOUBLE_EQ(spec.settings.sigma_clip->thres, 3.5);
  EXPECT_EQ(spec.settings.sigma_clip->max_iter, 7u);
  EXPECT_EQ(spec.settings.error_model, azflow::integrate::ErrorModel::kAzimuthal);
  j["extra_options"] = {{"thres", 3.5}, {"percentile", 50}};
  std::ofstream(path) << j.dump(2);
  try {
    (void)job_spec_from_pyfai_config(path);
    ADD_FAILURE() << "imported an unknown sigma_clip_ng option";
  } catch (const Error& e) {
    expect_names(e.what(), "extra_options");
  }
  fs::remove(path);
}

}  // namespace

namespace {

class PyFaiConfigRoundTrip : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("azflow_pyfai_rt_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

/// A config imported, run by `azflow integrate` as explicit options, and the WorkerConfig v5 that
/// azflow wrote into its output (/entry/process/pyfai_config) imported again: the same job.
TEST_P(PyFaiConfigRoundTrip, OutputConfigImportsAsTheJobThatMadeIt) {
  const std::string name = GetParam();
  const JobSpec spec = job_spec_from_pyfai_config(kFixtures / (name + ".json"));
  const fs::path poni = dir_ / "imported.poni";
  std::ofstream(poni) << spec.poni_text;
  const fs::path output = dir_ / "out.h5";
  const azflow::testing::CommandResult r = azflow::testing::run_command(
      std::string(AZFLOW_BIN) + " integrate " +
      quote((kCliFixtures / "pilatus_master.h5").string()) + explicit_options(spec, poni) +
      " --frames 0:1 --threads 2 --quiet --overwrite -o " + quote(output.string()));
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<std::string> text =
      H5File(output.string()).strings("/entry/process/pyfai_config/data");
  ASSERT_EQ(text.size(), 1u);
  const json written = json::parse(text[0]);
  EXPECT_EQ(written.value("version", 0), 5);
  EXPECT_EQ(written.value("application", ""), "worker");
  const fs::path config = dir_ / "written.json";
  std::ofstream(config) << text[0];
  json again = azflow::daemon::to_json(job_spec_from_pyfai_config(config));
  json first = azflow::daemon::to_json(spec);
  for (json* j : {&again, &first}) j->erase("poni_path");
  EXPECT_EQ(again, first);
  // ... and `azflow integrate --config` of that written config gives the same numbers
  const fs::path rerun = dir_ / "rerun.h5";
  const azflow::testing::CommandResult r2 = azflow::testing::run_command(
      std::string(AZFLOW_BIN) + " integrate " +
      quote((kCliFixtures / "pilatus_master.h5").string()) + " --config " + quote(config.string()) +
      " --frames 0:1 --threads 2 --quiet --overwrite -o " + quote(rerun.string()));
  ASSERT_EQ(r2.code, 0) << r2.output;
  const H5File a(output.string()), b(rerun.string());
  EXPECT_EQ(b.doubles("/entry/integrate/I"), a.doubles("/entry/integrate/I"));
  const std::vector<std::string> axes = a.string_attr("/entry/integrate", "axes");
  ASSERT_FALSE(axes.empty());
  EXPECT_EQ(b.string_attr("/entry/integrate", "axes"), axes);
  EXPECT_EQ(b.doubles("/entry/integrate/" + axes.back()),
            a.doubles("/entry/integrate/" + axes.back()));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PyFaiConfigRoundTrip,
                         ::testing::Values("gui_1d", "gui_2d", "legacy_v1"));

}  // namespace
