// The control endpoint against real ZeroMQ sockets: every verb, and malformed requests answered
// with the right error field while the server keeps serving.
#include "daemon/control.hpp"

#include <gtest/gtest.h>

#include <zmq_addon.hpp>

#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using nlohmann::json;
using test::ServerThread;
using test::StoreHandler;
using test::TempDir;

/// A REQ client with a 3 s receive timeout.
class Client {
 public:
  explicit Client(const std::string& endpoint) : socket_(context_, zmq::socket_type::req) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvtimeo, 3000);
    socket_.connect(endpoint);
  }
  json raw(const std::string& text) {
    socket_.send(zmq::buffer(text), zmq::send_flags::none);
    zmq::message_t reply;
    const auto got = socket_.recv(reply);
    if (!got) throw std::runtime_error("no reply within 3 s");
    return json::parse(reply.to_string());
  }
  json request(const json& j) { return raw(j.dump()); }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
};

json enqueue_request(const TempDir& dir) {
  return {{"v", 1},
          {"id", "c1"},
          {"verb", "enqueue"},
          {"spec",
           {{"datasets", {(dir.path() / "a_master.h5").string()}},
            {"poni_text", test::kPoniText},
            {"settings", {{"npt_rad", 500}, {"unit", "2th_deg"}}}}}};
}

class ControlServerTest : public ::testing::Test {
 protected:
  TempDir dir_;
  StoreHandler handler_{dir_.path() / "state/jobs.sqlite"};
  ServerThread server_{"ipc://" + (dir_.path() / "run/test.control").string(), handler_};
  Client client_{server_.endpoint()};

  void expect_error(const std::string& text, const std::string& field) {
    const json r = client_.raw(text);
    EXPECT_EQ(r["v"], 1) << r;
    EXPECT_EQ(r["ok"], false) << r;
    EXPECT_EQ(r["error"]["field"], field) << text.substr(0, 200) << " -> " << r;
    EXPECT_FALSE(r["error"]["message"].get<std::string>().empty());
    // and the server keeps serving
    const json ok = client_.request({{"v", 1}, {"verb", "status"}});
    EXPECT_EQ(ok["ok"], true) << ok;
  }
};

TEST_F(ControlServerTest, EnqueueStatusListCancel) {
  const json enq = client_.request(enqueue_request(dir_));
  ASSERT_EQ(enq["ok"], true) << enq;
  EXPECT_EQ(enq["id"], "c1");
  const std::int64_t id = enq["result"]["job_id"];
  EXPECT_EQ(enq["result"]["state"], "queued");
  EXPECT_EQ(handler_.last_spec.settings.npt_rad, 500u);
  EXPECT_EQ(handler_.last_spec.settings.unit, integrate::RadialUnit::k2Th_deg);

  const json st = client_.request({{"v", 1}, {"id", 7}, {"verb", "status"}, {"job_id", id}});
  ASSERT_EQ(st["ok"], true) << st;
  EXPECT_EQ(st["id"], 7);
  EXPECT_EQ(st["result"]["job"]["job_id"], id);
  EXPECT_EQ(st["result"]["job"]["state"], "queued");
  EXPECT_EQ(st["result"]["job"]["frames_total"], 100);
  EXPECT_EQ(st["result"]["job"]["shards"]["total"], 2);
  EXPECT_TRUE(st["result"]["job"]["started"].is_null());
  EXPECT_TRUE(st["result"]["job"]["created"].get<std::string>().ends_with("Z"));

  const json daemon = client_.request({{"v", 1}, {"verb", "status"}});
  EXPECT_EQ(daemon["result"]["daemon"]["queued"], 1) << daemon;

  const json list = client_.request({{"v", 1}, {"verb", "list"}});
  ASSERT_EQ(list["result"]["jobs"].size(), 1u) << list;
  EXPECT_EQ(list["result"]["jobs"][0]["job_id"], id);

  const json cancel = client_.request({{"v", 1}, {"verb", "cancel"}, {"job_ids", {id, 999}}});
  ASSERT_EQ(cancel["ok"], true) << cancel;
  EXPECT_EQ(cancel["result"]["cancelled"], json::array({id}));
  EXPECT_EQ(cancel["result"]["not_cancelled"][0]["job_id"], 999);

  EXPECT_EQ(client_.request({{"v", 1}, {"verb", "list"}})["result"]["jobs"].size(), 0u);
  const json all = client_.request({{"v", 1}, {"verb", "list"}, {"all", true}});
  ASSERT_EQ(all["result"]["jobs"].size(), 1u);
  EXPECT_EQ(all["result"]["jobs"][0]["state"], "cancelled");
  const json by_state = client_.request({{"v", 1}, {"verb", "list"}, {"state", "cancelled"}});
  EXPECT_EQ(by_state["result"]["jobs"].size(), 1u);
}

TEST_F(ControlServerTest, Shutdown) {
  const json r = client_.request({{"v", 1}, {"verb", "shutdown"}});
  EXPECT_EQ(r["ok"], true) << r;
  EXPECT_TRUE(r["result"].is_object());
  EXPECT_EQ(handler_.shutdowns.load(), 1);
}

TEST_F(ControlServerTest, HandlerErrorsBecomeResponses) {
  const json r = client_.request({{"v", 1}, {"verb", "status"}, {"job_id", 4242}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["error"]["field"], "job_id");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("4242"), std::string::npos);
}

TEST_F(ControlServerTest, MalformedRequests) {
  expect_error("{not json", "");
  expect_error("[1, 2, 3]", "");
  expect_error("\"enqueue\"", "");
  expect_error(R"({"verb": "status"})", "v");
  expect_error(R"({"v": 2, "verb": "status"})", "v");
  expect_error(R"({"v": "1", "verb": "status"})", "v");
  expect_error(R"({"v": 1})", "verb");
  expect_error(R"({"v": 1, "verb": 3})", "verb");
  expect_error(R"({"v": 1, "verb": "frobnicate"})", "verb");
  expect_error(R"({"v": 1, "verb": "status", "job_id": "three"})", "job_id");
  expect_error(R"({"v": 1, "verb": "status", "job_id": -3})", "job_id");
  expect_error(R"({"v": 1, "verb": "status", "bogus": 1})", "bogus");
  expect_error(R"({"v": 1, "verb": "list", "state": "done"})", "state");
  expect_error(R"({"v": 1, "verb": "list", "all": "yes"})", "all");
  expect_error(R"({"v": 1, "verb": "cancel"})", "job_ids");
  expect_error(R"({"v": 1, "verb": "cancel", "job_ids": [1, "x"]})", "job_ids[1]");
  expect_error(R"({"v": 1, "verb": "enqueue"})", "spec");
  expect_error(R"({"v": 1, "verb": "enqueue", "spec": []})", "spec");
  json bad = enqueue_request(dir_);
  bad["spec"]["settings"]["npt_rad"] = "lots";
  expect_error(bad.dump(), "spec.settings.npt_rad");
  bad = enqueue_request(dir_);
  bad["spec"]["datasets"][1] = "relative.h5";
  expect_error(bad.dump(), "spec.datasets[1]");
}

TEST_F(ControlServerTest, OversizedMessage) {
  json big = {{"v", 1}, {"verb", "status"}, {"pad", std::string(2u << 20, 'x')}};
  expect_error(big.dump(), "");
}

TEST_F(ControlServerTest, ErrorEchoesRequestId) {
  const json r = client_.request({{"v", 1}, {"id", "abc"}, {"verb", "nope"}});
  EXPECT_EQ(r["id"], "abc");
  EXPECT_EQ(r["ok"], false);
}

TEST_F(ControlServerTest, DealerClientWithoutDelimiter) {
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 3000);
  dealer.connect(server_.endpoint());
  const std::string text = json{{"v", 1}, {"id", 5}, {"verb", "status"}}.dump();
  dealer.send(zmq::buffer(text), zmq::send_flags::none);
  zmq::message_t reply;
  ASSERT_TRUE(dealer.recv(reply));
  EXPECT_EQ(json::parse(reply.to_string())["id"], 5);
}

TEST(ControlServer, BindFailureNamesEndpoint) {
  TempDir dir;
  StoreHandler handler(dir.path() / "jobs.sqlite");
  zmq::context_t context;
  const std::string endpoint = "tcp://256.1.1.1:5555";
  try {
    ControlServer server(context, {endpoint}, handler);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(endpoint), std::string::npos) << e.what();
  }
}

TEST(ControlServer, TcpEndpointAndPollTimeout) {
  TempDir dir;
  StoreHandler handler(dir.path() / "jobs.sqlite");
  zmq::context_t context;
  ControlServer server(context, {"tcp://127.0.0.1:*"}, handler);
  ASSERT_TRUE(server.endpoints()[0].starts_with("tcp://127.0.0.1:"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server.poll(std::chrono::milliseconds(30)), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(25));
  EXPECT_EQ(server.handle(R"({"v":1,"verb":"shutdown"})")["ok"], true);
  EXPECT_TRUE(server.shutdown_requested());
}

}  // namespace
}  // namespace azflow::daemon
