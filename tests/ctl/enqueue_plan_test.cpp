// azflowctl enqueue's planning, without a daemon: glob expansion, one job per dataset (or one
// for all with --join), sweeps as a cartesian product with validated values, output names.
#include <gtest/gtest.h>

#include <set>

#include "ctl/commands.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::ctl {
namespace {

namespace fs = std::filesystem;
namespace test = daemon::test;

class EnqueuePlan : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = fs::current_path();
    fs::current_path(dir_.path());
    test::write_file("geo.poni", test::kPoniText);
    for (const char* f : {"a_master.h5", "b_master.h5", "c.nxs"}) test::write_file(f, "");
  }
  void TearDown() override { fs::current_path(previous_); }

  /// Parses `line` as the enqueue subcommand's arguments.
  EnqueueArgs parse(const std::string& line) {
    auto args = std::make_unique<EnqueueArgs>();
    app_ = std::make_unique<CLI::App>();
    auto* cmd = app_->add_subcommand("enqueue");
    add_enqueue_options(*cmd, *args);
    app_->parse("enqueue " + line, false);
    EnqueueArgs copy = *args;
    held_ = std::move(args);
    return copy;
  }

  std::string abs(const std::string& name) const { return (dir_.path() / name).string(); }

  test::TempDir dir_;
  fs::path previous_;
  std::unique_ptr<CLI::App> app_;
  std::unique_ptr<EnqueueArgs> held_;
};

TEST_F(EnqueuePlan, GlobsAndOneJobPerDataset) {
  EXPECT_EQ(expand_datasets({"*_master.h5", "c.nxs"}),
            (std::vector<std::string>{abs("a_master.h5"), abs("b_master.h5"), abs("c.nxs")}));
  EXPECT_THROW(expand_datasets({"z*.h5"}), Error);
  auto jobs = plan_jobs(parse("'*_master.h5' --poni geo.poni"), "");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].spec.datasets, std::vector<std::string>{abs("a_master.h5")});
  EXPECT_EQ(jobs[0].spec.output_path, "");  // the daemon chooses job-<id>.h5
  jobs = plan_jobs(parse("'*_master.h5' --poni geo.poni --join -o r.h5"), "");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].spec.datasets.size(), 2u);
  EXPECT_EQ(jobs[0].spec.output_path, abs("r.h5"));
  EXPECT_THROW(plan_jobs(parse("'*_master.h5' --poni geo.poni -o r.h5"), ""), Error);
  jobs = plan_jobs(parse("a_master.h5 c.nxs --poni geo.poni --output-dir out"), "");
  EXPECT_EQ(jobs[0].spec.output_path, abs("out/a.h5"));
  EXPECT_EQ(jobs[1].spec.output_path, abs("out/c.h5"));
}

TEST_F(EnqueuePlan, FormatGoesIntoTheSpecAndNamesTheOutputs) {
  auto jobs = plan_jobs(parse("a_master.h5 --poni geo.poni"), "");
  EXPECT_EQ(jobs[0].spec.format, reduce::OutputFormat::kNexus);
  jobs = plan_jobs(parse("a_master.h5 c.nxs --poni geo.poni --format xy --output-dir out"), "");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].spec.format, reduce::OutputFormat::kXy);
  EXPECT_EQ(jobs[0].spec.output_path, abs("out/a.xy"));
  jobs =
      plan_jobs(parse("a_master.h5 --poni geo.poni --format nxazint --npt-rad 9 --npt-azim 4"), "");
  EXPECT_EQ(jobs[0].spec.format, reduce::OutputFormat::kNxAzint);
  for (const char* bad : {"--format hdf5", "--format xy --npt-rad 9 --npt-azim 4"}) {
    try {
      plan_jobs(parse(std::string("a_master.h5 --poni geo.poni ") + bad), "");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--format"), std::string::npos) << e.what();
    }
  }
}

TEST_F(EnqueuePlan, SweepIsACartesianProductWithItsSettings) {
  const auto jobs = plan_jobs(parse("a_master.h5 --poni geo.poni --npt-rad 50 --npt-azim 8 "
                                    "--sweep npt_rad=100,200,300 --sweep unit=q_nm^-1,2th_deg "
                                    "--sweep polarization_factor=none,0.95 --sweep "
                                    "radial_range=1:30,none"),
                              "/daemon/outputs");
  ASSERT_EQ(jobs.size(), 24u);
  std::set<std::string> outputs;
  for (const PlannedJob& j : jobs) {
    outputs.insert(j.spec.output_path);
    EXPECT_EQ(j.spec.settings.npt_azim, 8u);  // not swept: from the options
    ASSERT_EQ(j.sweep.size(), 4u);
    EXPECT_EQ(std::to_string(j.spec.settings.npt_rad), j.sweep[0].second);
    EXPECT_EQ(std::string(integrate::unit_name(j.spec.settings.unit)), j.sweep[1].second);
    EXPECT_EQ(j.spec.settings.polarization_factor.has_value(), j.sweep[2].second != "none");
    EXPECT_EQ(j.spec.settings.radial_range.has_value(), j.sweep[3].second != "none");
    EXPECT_TRUE(j.spec.output_path.starts_with("/daemon/outputs/a_npt_rad"));
  }
  EXPECT_EQ(outputs.size(), 24u);
  EXPECT_EQ(jobs[0].spec.output_path,
            "/daemon/outputs/a_npt_rad100_unitq_nm-1_polarization_factornone_radial_range1_30.h5");
  EXPECT_EQ(jobs[0].spec.settings.radial_range, std::pair(1.0, 30.0));
  EXPECT_EQ(jobs[23].sweep[0].second, "300");  // the first sweep varies slowest
  EXPECT_EQ(jobs[1].sweep[3].second, "none");
}

TEST_F(EnqueuePlan, SweepErrorsNameKeyAndValue) {
  const auto message = [&](const std::string& line) {
    try {
      plan_jobs(parse("a_master.h5 --poni geo.poni " + line), "/o");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message("--sweep bins=1").find("unknown key 'bins'"), std::string::npos);
  EXPECT_NE(message("--sweep npt=10,x").find("'x' is not an integer"), std::string::npos);
  EXPECT_NE(message("--sweep npt=1 --sweep npt_rad=2").find("swept twice"), std::string::npos);
  EXPECT_NE(message("--sweep split=pseudo").find("split=pseudo"), std::string::npos);
  EXPECT_NE(message("--sweep method=pseudo").find("method=pseudo"), std::string::npos);
  EXPECT_EQ(message("--sweep method=full,csr,cython"), "(accepted)");
  EXPECT_NE(message("--sweep polarization_factor=2").find("polarization_factor=2"),
            std::string::npos);
  EXPECT_NE(message("--sweep radial_range=3").find("LOW:HIGH"), std::string::npos);
  EXPECT_NE(message("--sweep npt=").find("empty value"), std::string::npos);
  EXPECT_NE(message("--sweep npt").find("KEY=V1,V2"), std::string::npos);
  EXPECT_EQ(message("--sweep mask=m1.npy,none --sweep dark=d.h5::/x"), "(accepted)");
  const auto jobs = plan_jobs(parse("a_master.h5 --poni geo.poni --sweep mask=m1.npy,none"), "/o");
  EXPECT_EQ(jobs[0].spec.mask_path, abs("m1.npy"));
  EXPECT_EQ(jobs[0].spec.output_path, "/o/a_maskm1.h5");
  EXPECT_EQ(jobs[1].spec.mask_path, "");
}

TEST_F(EnqueuePlan, ConfigAndIntegrationOptionsTogetherAreRefused) {
  try {
    plan_jobs(parse("a_master.h5 --config s.json --unit 2th_deg"), "");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--config s.json and --unit"), std::string::npos)
        << e.what();
  }
  try {
    plan_jobs(parse("a_master.h5 --config s.json --poni geo.poni"), "");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--poni"), std::string::npos) << e.what();
  }
}

TEST_F(EnqueuePlan, AfterPriorityAndSweepOptionsTakeOneValueEach) {
  const EnqueueArgs a = parse(
      "--after 3,4 --sweep npt=1,2 a_master.h5 --after 5 --priority -2 "
      "--sweep unit=2th_deg b_master.h5 --poni geo.poni");
  EXPECT_EQ(a.after, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(a.priority, -2);
  EXPECT_EQ(a.sweeps, (std::vector<std::string>{"npt=1,2", "unit=2th_deg"}));
  EXPECT_EQ(a.datasets, (std::vector<std::string>{"a_master.h5", "b_master.h5"}));
  EXPECT_EQ(plan_jobs(a, "/o").size(), 4u);
}

TEST_F(EnqueuePlan, DuplicateNamesAreMadeUnique) {
  fs::create_directory("x");
  test::write_file("x/a_master.h5", "");
  const auto jobs =
      plan_jobs(parse("a_master.h5 x/a_master.h5 --poni geo.poni --output-dir o"), "");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].spec.output_path, abs("o/a.h5"));
  EXPECT_EQ(jobs[1].spec.output_path, abs("o/a_2.h5"));
}

}  // namespace
}  // namespace azflow::ctl
