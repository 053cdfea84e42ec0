// Job specs: JSON round trip, defaults shared with `azflow integrate`, each invalid field named.
#include "daemon/job_spec.hpp"

#include <gtest/gtest.h>

#include "cli/integrate_options.hpp"
#include "daemon/job_setup.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using nlohmann::json;

json minimal() { return json{{"datasets", {"/data/a_master.h5"}}, {"poni_text", test::kPoniText}}; }

TEST(JobSpec, DefaultsMatchAzflowIntegrate) {
  const JobSpec spec = job_spec_from_json(minimal());
  const cli::IntegrateOptions options;  // azflow integrate with no options
  const auto cli_settings = cli::make_settings(options, DType::kUint32);
  const auto settings = spec.settings_for(DType::kUint32);
  EXPECT_EQ(settings.unit, cli_settings.unit);
  EXPECT_EQ(settings.npt_rad, cli_settings.npt_rad);
  EXPECT_EQ(settings.npt_azim, cli_settings.npt_azim);
  EXPECT_EQ(settings.split, cli_settings.split);
  EXPECT_EQ(settings.error_model, cli_settings.error_model);
  EXPECT_EQ(settings.correct_solid_angle, cli_settings.correct_solid_angle);
  EXPECT_EQ(settings.polarization_factor, cli_settings.polarization_factor);
  EXPECT_EQ(settings.dummy, cli_settings.dummy);
  EXPECT_EQ(settings.dummy, 4294967295.0);
  EXPECT_EQ(settings.normalization_factor, cli_settings.normalization_factor);
  EXPECT_FALSE(spec.settings_for(DType::kFloat32).dummy.has_value());
  EXPECT_EQ(spec.settings_for(DType::kUint16).dummy, 65535.0);
  EXPECT_TRUE(spec.use_file_mask);
  EXPECT_EQ(spec.mode, JobSpec::Mode::kSplit);
  EXPECT_EQ(spec.format, reduce::OutputFormat::kNexus);
}

TEST(JobSpec, MethodSetsTheSplitting) {
  json j = minimal();
  j["settings"]["method"] = "full,csr,cython";
  EXPECT_EQ(job_spec_from_json(j).settings.split, integrate::PixelSplit::kFull);
  j["settings"]["split"] = "no";  // method, when given, wins (sweeps set it over the split)
  j["settings"]["method"] = "splitbbox";
  EXPECT_EQ(job_spec_from_json(j).settings.split, integrate::PixelSplit::kBBox);
  j["settings"].erase("method");
  j["settings"]["split"] = "full";
  EXPECT_EQ(job_spec_from_json(j).settings.split, integrate::PixelSplit::kFull);
}

TEST(JobSpec, EveryOutputFormatByName) {
  for (const char* name : {"nexus", "nxazint", "xy", "xy-frames"}) {
    json j = minimal();
    j["format"] = name;
    const JobSpec spec = job_spec_from_json(j);
    EXPECT_EQ(reduce::output_format_name(spec.format), name);
  }
  json cake = minimal();
  cake["format"] = "nxazint";
  cake["settings"] = json::parse(R"({"npt_rad": 100, "npt_azim": 36})");  // as on the wire
  EXPECT_EQ(job_spec_from_json(cake).format, reduce::OutputFormat::kNxAzint);
}

TEST(JobSpec, RoundTrip) {
  JobSpec spec;
  spec.datasets = {"/data/a_master.h5", "/data/b.h5"};
  spec.dataset_path = "/entry/data/data";
  spec.poni_text = test::kPoniText;
  spec.poni_path = "/data/geometry.poni";
  spec.settings.unit = integrate::RadialUnit::k2Th_deg;
  spec.settings.npt_rad = 500;
  spec.settings.npt_azim = 36;
  spec.settings.split = integrate::PixelSplit::kBBox;
  spec.settings.radial_range = std::pair(1.0, 40.0);
  spec.settings.azimuth_range_deg = std::pair(-90.0, 90.0);
  spec.settings.correct_solid_angle = false;
  spec.settings.polarization_factor = 0.99;
  spec.settings.dummy = -1.0;
  spec.settings.delta_dummy = 0.5;
  spec.dummy_auto = false;
  spec.settings.normalization_factor = 2.5;
  spec.settings.error_model = integrate::ErrorModel::kPoisson;
  spec.mask_path = "/data/mask.h5::/mask";
  spec.dark_path = "/data/dark.npy";
  spec.flat_path = "/data/flat.edf";
  spec.use_file_mask = false;
  spec.output_path = "/out/a.nxs";
  spec.mode = JobSpec::Mode::kBulk;
  spec.format = reduce::OutputFormat::kNxAzint;

  const json j = to_json(spec);
  const JobSpec back = job_spec_from_json(json::parse(j.dump()));
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(back.datasets, spec.datasets);
  EXPECT_EQ(back.settings.radial_range, spec.settings.radial_range);
  EXPECT_EQ(back.settings.dummy, -1.0);
  EXPECT_FALSE(back.dummy_auto);
  EXPECT_EQ(back.mode, JobSpec::Mode::kBulk);
  EXPECT_EQ(back.format, reduce::OutputFormat::kNxAzint);
  EXPECT_EQ(j["format"], "nxazint");
  EXPECT_EQ(j["settings"]["unit"], "2th_deg");
  EXPECT_EQ(j["settings"]["split"], "bbox");
  EXPECT_TRUE(j["settings"]["sigma_clip"].is_null());
}

TEST(JobSpec, SigmaClipRoundTrip) {
  JobSpec spec;
  spec.datasets = {"/data/a.h5"};
  spec.poni_text = test::kPoniText;
  spec.settings.error_model = integrate::ErrorModel::kAzimuthal;
  spec.settings.sigma_clip = integrate::SigmaClip{3.5, 7};
  const json j = to_json(spec);
  const JobSpec back = job_spec_from_json(json::parse(j.dump()));
  EXPECT_EQ(to_json(back), j);
  ASSERT_TRUE(back.settings.sigma_clip.has_value());
  EXPECT_EQ(back.settings.sigma_clip->thres, 3.5);
  EXPECT_EQ(back.settings.sigma_clip->max_iter, 7u);
  // sigma_clip without an error model takes pyFAI's fallback, poisson
  json bare = j;
  bare["settings"]["error_model"] = "none";
  EXPECT_EQ(job_spec_from_json(bare).settings.error_model, integrate::ErrorModel::kPoisson);
}

TEST(JobSpec, DummyAutoNullAndNumber) {
  json j = minimal();
  EXPECT_TRUE(job_spec_from_json(j).dummy_auto);
  j["settings"] = {{"dummy", nullptr}};
  JobSpec none = job_spec_from_json(j);
  EXPECT_FALSE(none.dummy_auto);
  EXPECT_FALSE(none.settings_for(DType::kUint32).dummy.has_value());
  j["settings"] = {{"dummy", "auto"}, {"delta_dummy", 0.5}};
  JobSpec automatic = job_spec_from_json(j);
  EXPECT_EQ(automatic.settings_for(DType::kUint16).delta_dummy, 0.5);
  EXPECT_FALSE(automatic.settings_for(DType::kFloat32).delta_dummy.has_value());
  EXPECT_EQ(to_json(automatic)["settings"]["dummy"], "auto");
}

struct BadCase {
  const char* name;
  json patch;  // merged into minimal()
  const char* field;
};

class JobSpecInvalid : public ::testing::TestWithParam<BadCase> {};

TEST_P(JobSpecInvalid, NamesTheField) {
  json j = minimal();
  j.merge_patch(GetParam().patch);
  try {
    (void)job_spec_from_json(j, "spec.");
    FAIL() << "accepted " << j.dump();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), std::string("spec.") + GetParam().field) << e.what();
    EXPECT_FALSE(e.message().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fields, JobSpecInvalid,
    ::testing::Values(
        BadCase{"no_datasets", {{"datasets", nullptr}}, "datasets"},
        BadCase{"empty_datasets", {{"datasets", json::array()}}, "datasets"},
        BadCase{"dataset_type", {{"datasets", {"/a.h5", 3}}}, "datasets[1]"},
        BadCase{"dataset_relative", {{"datasets", {"/a.h5", "b.h5"}}}, "datasets[1]"},
        BadCase{"no_poni", {{"poni_text", nullptr}}, "poni_text"},
        BadCase{"bad_poni", {{"poni_text", "Distance: -1\n"}}, "poni_text"},
        BadCase{"poni_relative", {{"poni_path", "g.poni"}}, "poni_path"},
        BadCase{"npt_type", {{"settings", {{"npt_rad", "many"}}}}, "settings.npt_rad"},
        BadCase{"npt_zero", {{"settings", {{"npt_rad", 0}}}}, "settings.npt_rad"},
        BadCase{"npt_negative", {{"settings", {{"npt_rad", -5}}}}, "settings.npt_rad"},
        BadCase{"unit", {{"settings", {{"unit", "furlongs"}}}}, "settings.unit"},
        BadCase{"split", {{"settings", {{"split", "pseudo"}}}}, "settings.split"},
        BadCase{"method", {{"settings", {{"method", "pseudo,csr,cython"}}}}, "settings.method"},
        BadCase{"error_model", {{"settings", {{"error_model", "x"}}}}, "settings.error_model"},
        BadCase{"sigma_clip_type", {{"settings", {{"sigma_clip", 5}}}}, "settings.sigma_clip"},
        BadCase{"sigma_clip_2d", json::parse(R"({"settings": {"npt_azim": 36, "sigma_clip": {}}})"),
                "settings.sigma_clip"},
        BadCase{"sigma_clip_thres", json::parse(R"({"settings": {"sigma_clip": {"thres": 0}}})"),
                "settings.sigma_clip.thres"},
        BadCase{"sigma_clip_unknown", json::parse(R"({"settings": {"sigma_clip": {"cutoff": 3}}})"),
                "settings.sigma_clip.cutoff"},
        BadCase{"range_shape", {{"settings", {{"radial_range", {1}}}}}, "settings.radial_range"},
        BadCase{"range_order", {{"settings", {{"radial_range", {5, 1}}}}}, "settings.radial_range"},
        BadCase{"azim_wrap_bounds",  // lo > hi is the sector across +-180, within [-180, 180]
                {{"settings", {{"azimuth_range_deg", {200, -90}}}}},
                "settings.azimuth_range_deg"},
        BadCase{"azimuthal_unit",
                {{"settings", {{"azimuthal_unit", "grad"}}}},
                "settings.azimuthal_unit"},
        BadCase{"polarization",
                {{"settings", {{"polarization_factor", 2}}}},
                "settings.polarization_factor"},
        BadCase{
            "norm", {{"settings", {{"normalization_factor", 0}}}}, "settings.normalization_factor"},
        BadCase{"dummy_type", {{"settings", {{"dummy", "big"}}}}, "settings.dummy"},
        BadCase{"solid_angle_type",
                {{"settings", {{"correct_solid_angle", "yes"}}}},
                "settings.correct_solid_angle"},
        BadCase{"settings_unknown", {{"settings", {{"bins", 5}}}}, "settings.bins"},
        BadCase{"settings_type", {{"settings", 5}}, "settings"},
        BadCase{"mask_relative", {{"mask_path", "mask.h5"}}, "mask_path"},
        BadCase{"output_relative", {{"output_path", "out.nxs"}}, "output_path"},
        BadCase{"file_mask_type", {{"use_file_mask", 1}}, "use_file_mask"},
        BadCase{"mode", {{"mode", "fast"}}, "mode"},
        BadCase{"format", {{"format", "hdf5"}}, "format"},
        BadCase{"format_type", {{"format", 3}}, "format"},
        BadCase{"xy_cake", json::parse(R"({"format": "xy", "settings": {"npt_azim": 36}})"),
                "format"},
        BadCase{"xy_frames_cake",
                json::parse(R"({"format": "xy-frames", "settings": {"npt_azim": 36}})"), "format"},
        BadCase{"frames_text", {{"frames", "0:10"}}, "frames"},
        BadCase{"frames_empty", {{"frames", {{"first", 5}, {"last", 5}}}}, "frames"},
        BadCase{"frames_reversed", {{"frames", {{"first", 5}, {"last", 2}}}}, "frames"},
        BadCase{"frames_negative", {{"frames", {{"first", -1}}}}, "frames.first"},
        BadCase{"frames_last_type", {{"frames", {{"last", "end"}}}}, "frames.last"},
        BadCase{"frames_unknown", {{"frames", {{"stop", 3}}}}, "frames.stop"},
        BadCase{"follow_zero", {{"follow", {{"idle_timeout_s", 0}}}}, "follow.idle_timeout_s"},
        BadCase{"follow_text", {{"follow", {{"idle_timeout_s", "30"}}}}, "follow.idle_timeout_s"},
        BadCase{"follow_unknown", {{"follow", {{"timeout", 3}}}}, "follow.timeout"},
        BadCase{"follow_federated", {{"follow", json::object()}, {"nodes", "all"}}, "follow"},
        BadCase{"stream_no_endpoint", json::parse(R"({"datasets": null, "stream": {}})"),
                "stream.endpoint"},
        BadCase{"stream_endpoint",
                json::parse(R"({"datasets": null, "stream": {"endpoint": "dcu:31001"}})"),
                "stream.endpoint"},
        BadCase{"stream_format", json::parse(R"({"datasets": null,
                                "stream": {"endpoint": "tcp://dcu:1", "format": "v3"}})"),
                "stream.format"},
        BadCase{"stream_with_datasets", json::parse(R"({"stream": {"endpoint": "tcp://dcu:1"}})"),
                "datasets"},
        BadCase{"stream_federated", json::parse(R"({"datasets": null, "nodes": "all",
                                "stream": {"endpoint": "tcp://dcu:1"}})"),
                "stream"},
        BadCase{"stream_frames", json::parse(R"({"datasets": null, "frames": {"first": 1},
                                "stream": {"endpoint": "tcp://dcu:1"}})"),
                "frames"},
        BadCase{"stream_timeout", json::parse(R"({"datasets": null,
                                "stream": {"endpoint": "tcp://dcu:1", "idle_timeout_s": 0}})"),
                "stream.idle_timeout_s"},
        BadCase{"stream_unknown", json::parse(R"({"datasets": null,
                                "stream": {"endpoint": "tcp://dcu:1", "series_id": 3}})"),
                "stream.series_id"},
        BadCase{"stream_save_raw_relative", json::parse(R"({"datasets": null,
                                "stream": {"endpoint": "tcp://dcu:1", "save_raw": "raw"}})"),
                "stream.save_raw"},
        BadCase{"stream_series_empty",
                json::parse(R"({"datasets": null, "stream": {"endpoint": "tcp://dcu:1",
                                "series": {"rows": 0, "cols": 4, "images": 2}}})"),
                "stream.series.images"},
        BadCase{"unknown", {{"first_frame", 10}}, "first_frame"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

// "frames": {"first", "last"} with "last" exclusive or null (to the end); null = every frame.
TEST(JobSpec, FramesRoundTripAndOffset) {
  JobSpec all = job_spec_from_json(minimal());
  EXPECT_FALSE(all.frames.has_value());
  EXPECT_EQ(all.frame_offset(), 0);
  EXPECT_TRUE(to_json(all).at("frames").is_null());
  json j = minimal();
  j["frames"] = {{"first", 5}, {"last", 15}};
  const JobSpec range = job_spec_from_json(j);
  ASSERT_TRUE(range.frames.has_value());
  EXPECT_EQ(range.frames->first, 5u);
  EXPECT_EQ(range.frames->last, std::optional<std::size_t>(15));
  EXPECT_EQ(range.frame_offset(), 5);
  EXPECT_EQ(to_json(range).at("frames"), json::parse(R"({"first": 5, "last": 15})"));
  EXPECT_EQ(job_spec_from_json(to_json(range)).frames, range.frames);
  j["frames"] = {{"first", 7}, {"last", nullptr}};
  const JobSpec open = job_spec_from_json(j);
  EXPECT_EQ(open.frames, (FrameSlice{7, std::nullopt}));
  EXPECT_EQ(job_spec_from_json(to_json(open)).frames, open.frames);
  // against a dataset: the same rule as azflow integrate --frames
  EXPECT_EQ(frame_slice_problem(*open.frames, 10), "");
  EXPECT_NE(frame_slice_problem(*range.frames, 10).find("range 5:15"), std::string::npos);
  EXPECT_EQ(resolve_frames(*open.frames, 10, "spec.frames"), (FrameRange{7, 10}));
}

// "follow": null = off; {} = the default idle timeout; {"idle_timeout_s": S}.
TEST(JobSpec, FollowRoundTrip) {
  const JobSpec off = job_spec_from_json(minimal());
  EXPECT_FALSE(off.follow_timeout_s.has_value());
  EXPECT_TRUE(to_json(off).at("follow").is_null());
  json j = minimal();
  j["follow"] = json::object();
  EXPECT_EQ(job_spec_from_json(j).follow_timeout_s, std::optional<double>(30.0));
  j["follow"] = {{"idle_timeout_s", 2.5}};
  const JobSpec on = job_spec_from_json(j);
  EXPECT_EQ(on.follow_timeout_s, std::optional<double>(2.5));
  EXPECT_EQ(to_json(on).at("follow"), json::parse(R"({"idle_timeout_s": 2.5})"));
  EXPECT_EQ(job_spec_from_json(to_json(on)).follow_timeout_s, on.follow_timeout_s);
}

// "stream": a stream job needs no datasets and no PONI; its series (set by the daemon at the
// start message) round-trips with every field.
TEST(JobSpec, StreamRoundTrip) {
  EXPECT_TRUE(to_json(job_spec_from_json(minimal())).at("stream").is_null());
  const json j = json::parse(R"({"stream": {"endpoint": "tcp://dcu:31001", "format": "v1"}})");
  const JobSpec spec = job_spec_from_json(j);
  ASSERT_TRUE(spec.stream.has_value());
  EXPECT_TRUE(spec.datasets.empty());
  EXPECT_TRUE(spec.poni_text.empty());
  EXPECT_EQ(spec.stream->endpoint, "tcp://dcu:31001");
  EXPECT_EQ(spec.stream->format, "v1");
  EXPECT_EQ(spec.stream->idle_timeout_s, 60.0);
  EXPECT_EQ(spec.stream->max_frame_mib, 18u);
  EXPECT_FALSE(spec.stream->series.has_value());
  EXPECT_TRUE(spec.stream->save_raw.empty());
  EXPECT_EQ(job_spec_from_json(to_json(spec)).stream, spec.stream);
  JobSpec started = spec;
  started.stream->save_raw = "/data/raw";
  started.stream->series = StreamSeries{
      7, "uid-7", 195, 487, DType::kUint16, 3, "/state/jobs/1/stream_7_pixel_mask.u32", true};
  const json back = to_json(started);
  EXPECT_EQ(back["stream"]["series"]["dtype"], "uint16");
  EXPECT_EQ(back["stream"]["save_raw"], "/data/raw");
  EXPECT_EQ(job_spec_from_json(back).stream, started.stream);
}

// The ctl's and azflow integrate's parser (base/frame_range.hpp).
TEST(JobSpec, FrameSliceTextIsAPythonSlice) {
  EXPECT_EQ(parse_frame_slice("5:15", "--frames"), (FrameSlice{5, 15}));
  EXPECT_EQ(parse_frame_slice("5:", "--frames"), (FrameSlice{5, std::nullopt}));
  EXPECT_EQ(parse_frame_slice(":15", "--frames"), (FrameSlice{0, 15}));
  EXPECT_EQ(parse_frame_slice("5", "--frames"), (FrameSlice{5, 6}));
  for (const char* bad : {"", "a:b", "1:2:3", "-1:4", " 1:2", "5:x", "x"}) {
    try {
      (void)parse_frame_slice(bad, "--frames");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--frames: malformed range"), std::string::npos)
          << e.what();
    }
  }
}

// nlohmann::json built in C++ holds 100 as a signed integer, one parsed from text as unsigned:
// both are the same request.
TEST(JobSpec, SignedAndUnsignedIntegersAreTheSameCount) {
  json built = minimal();
  built["settings"] = {{"npt_rad", 100}, {"npt_azim", 36}};
  ASSERT_TRUE(built["settings"]["npt_rad"].is_number_integer());
  ASSERT_FALSE(built["settings"]["npt_rad"].is_number_unsigned());
  const JobSpec spec = job_spec_from_json(built);
  EXPECT_EQ(spec.settings_for(DType::kUint32).npt_rad, 100u);
  EXPECT_EQ(spec.settings_for(DType::kUint32).npt_azim, 36u);
  const JobSpec parsed = job_spec_from_json(json::parse(built.dump()));
  EXPECT_EQ(parsed.settings_for(DType::kUint32).npt_rad, 100u);
}

TEST(JobSpec, DeltaDummyWithoutDummy) {
  json j = minimal();
  j["settings"] = {{"dummy", nullptr}, {"delta_dummy", 1}};  // merge_patch would drop the null
  try {
    (void)job_spec_from_json(j, "spec.");
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.settings.delta_dummy");
  }
}

TEST(JobSpec, NotAnObject) {
  try {
    (void)job_spec_from_json(json::array(), "spec.");
    FAIL();
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec");
  }
}

TEST(JobSpec, PlanCacheKeyHoldsWhatThePlanDependsOnOnly) {
  source::DatasetInfo info;
  info.rows = 195;
  info.cols = 487;
  info.dtype = DType::kUint32;
  const std::string base = plan_cache_key(job_spec_from_json(minimal()), info);
  // where frames come from and where results go: the same plan
  json other = minimal();
  other["datasets"] = {"/data/b_master.h5"};
  other["frames"] = {{"first", 10}, {"last", 20}};
  other["output_path"] = "/out/b.h5";
  EXPECT_EQ(plan_cache_key(job_spec_from_json(other), info), base);
  json stream = minimal();
  stream.erase("datasets");
  stream["stream"] = {{"endpoint", "tcp://dcu:31001"}};
  const JobSpec first_series = job_spec_from_json(stream);
  stream["stream"]["endpoint"] = "tcp://dcu2:31001";
  EXPECT_EQ(plan_cache_key(job_spec_from_json(stream), info), plan_cache_key(first_series, info));
  // what the plan is made of: another plan
  json npt = minimal();
  npt["settings"] = {{"npt_rad", 500}};
  EXPECT_NE(plan_cache_key(job_spec_from_json(npt), info), base);
  source::DatasetInfo masked = info;
  masked.pixel_mask = std::vector<std::uint32_t>(195 * 487, 0);
  (*masked.pixel_mask)[7] = 1;
  EXPECT_NE(plan_cache_key(job_spec_from_json(minimal()), masked), base);
  source::DatasetInfo other_shape = info;
  other_shape.dtype = DType::kUint16;
  EXPECT_NE(plan_cache_key(job_spec_from_json(minimal()), other_shape), base);
}

}  // namespace
}  // namespace azflow::daemon
