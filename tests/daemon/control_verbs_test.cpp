// Protocol v1 additions: enqueue's priority and after fields, the retry, workers, stats, config
// and drain verbs (decoding and their errors), and the default refusal of a handler that does
// not serve them.
#include <gtest/gtest.h>

#include "daemon/control.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using nlohmann::json;

json enqueue_request(json extra) {
  json r = {{"v", 1},
            {"verb", "enqueue"},
            {"spec", {{"datasets", {"/data/a_master.h5"}}, {"poni_text", test::kPoniText}}}};
  for (const auto& [k, v] : extra.items()) r[k] = v;
  return r;
}

std::string field_of(const json& request) {
  try {
    (void)decode_request(request.dump());
  } catch (const FieldError& e) {
    return e.field() + ": " + e.message();
  }
  return "(accepted)";
}

TEST(ControlVerbs, EnqueuePriorityAndAfter) {
  auto [request, id] =
      decode_request(enqueue_request({{"priority", -3}, {"after", {4, 9}}}).dump());
  const auto& e = std::get<EnqueueRequest>(request);
  EXPECT_EQ(e.priority, -3);
  EXPECT_EQ(e.after, (std::vector<std::int64_t>{4, 9}));
  const auto plain = std::get<EnqueueRequest>(decode_request(enqueue_request({}).dump()).first);
  EXPECT_EQ(plain.priority, 0);
  EXPECT_TRUE(plain.after.empty());
  EXPECT_EQ(field_of(enqueue_request({{"priority", 1.5}})),
            "priority: expected an integer, got 1.5");
  EXPECT_EQ(field_of(enqueue_request({{"after", 3}})), "after: expected a list of job ids");
  EXPECT_EQ(field_of(enqueue_request({{"after", {2, 0}}})),
            "after[1]: expected a job id (an integer > 0), got 0");
  EXPECT_EQ(field_of(enqueue_request({{"afterok", {2}}})),
            "afterok: unknown field for verb 'enqueue'");
}

TEST(ControlVerbs, NewVerbsDecode) {
  EXPECT_EQ(
      std::get<RetryRequest>(decode_request(R"({"v":1,"verb":"retry","job_id":7})").first).job_id,
      7);
  EXPECT_EQ(field_of({{"v", 1}, {"verb", "retry"}}), "job_id: required");
  EXPECT_EQ(field_of({{"v", 1}, {"verb", "retry"}, {"job_id", "x"}}),
            "job_id: expected a job id (an integer > 0), got \"x\"");
  for (const char* verb : {"workers", "stats", "config", "drain"}) {
    EXPECT_EQ(field_of({{"v", 1}, {"verb", verb}}), "(accepted)") << verb;
    EXPECT_EQ(field_of({{"v", 1}, {"verb", verb}, {"all", true}}),
              std::string("all: unknown field for verb '") + verb + "'");
  }
  EXPECT_TRUE(
      std::holds_alternative<DrainRequest>(decode_request(R"({"v":1,"verb":"drain"})").first));
  EXPECT_NE(
      field_of({{"v", 1}, {"verb", "frobnicate"}}).find("retry, workers, stats, config, drain"),
      std::string::npos);
}

TEST(ControlVerbs, AHandlerWithoutTheNewVerbsRefusesThem) {
  test::TempDir dir;
  test::StoreHandler handler(dir.path() / "jobs.sqlite");
  zmq::context_t context;
  ControlServer server(context, {"ipc://" + (dir.path() / "c").string()}, handler);
  const json r = server.handle(R"({"v":1,"id":3,"verb":"stats"})");
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["id"], 3);
  EXPECT_EQ(r["error"]["field"], "");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("verb 'stats' is not supported"),
            std::string::npos)
      << r.dump();
}

TEST(ControlVerbs, JobObjectCarriesPriorityAfterAndRates) {
  JobRecord job;
  job.id = 5;
  job.spec.datasets = {"/d.h5"};
  job.priority = 2;
  job.after = {1, 3};
  job.frames_total = 100;
  job.frames_done = 40;
  job.state = JobState::kRunning;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  job.started_unix_ms = now - 4000;
  const json j = job_json(job);
  EXPECT_EQ(j["priority"], 2);
  EXPECT_EQ(j["after"], json::array({1, 3}));
  EXPECT_NEAR(j["elapsed_s"].get<double>(), 4.0, 1.0);
  EXPECT_NEAR(j["frames_per_s"].get<double>(), 10.0, 3.0);
  EXPECT_NEAR(j["eta_s"].get<double>(), 6.0, 2.0);
  job.started_unix_ms.reset();
  EXPECT_TRUE(job_json(job)["frames_per_s"].is_null());
}

}  // namespace
}  // namespace azflow::daemon
