// azflowd's HTTP API (daemon/http_server.hpp, docs/http.md) against a real daemon, with
// cpp-httplib's client: every endpoint's JSON, frames equal to the rows of the output file (read
// back with the HDF5 C API), the bearer token, malformed POSTs, port 0 and its URL file, a port
// in use, a stalled client, the live cache of a running job and the event stream; the page's
// files at / and /static/.

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <httplib.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <zmq_addon.hpp>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/http_server.hpp"
#include "tests/daemon/daemon_test_support.hpp"

namespace azflow::testing {
namespace {

constexpr int kFrames = 20;
constexpr std::size_t kBins = 200;

/// The URL file of a daemon started by DaemonProcess on `space`; waits for it.
std::string wait_url(const TempSpace& space,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const fs::path file = space.path("run") / (space.instance() + ".http");
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::ifstream in(file);
    std::string url;
    if (in >> url && !url.empty()) return url;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

int port_of(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

std::string read_token(const TempSpace& space) {
  std::ifstream in(space.path("state") / "http.token");
  std::string token;
  in >> token;
  return token;
}

/// A GET or POST answer: status and body as JSON (null if the body is not JSON).
struct Answer {
  int status = 0;
  json body;
};

class Http {
 public:
  explicit Http(int port) : client_("127.0.0.1", port) {
    client_.set_connection_timeout(5);
    client_.set_read_timeout(20);
  }
  Answer get(const std::string& path) { return answer(client_.Get(path.c_str())); }
  Answer post(const std::string& path, const std::string& body, const std::string& token = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return answer(client_.Post(path.c_str(), headers, body, "application/json"));
  }

 private:
  static Answer answer(const httplib::Result& r) {
    if (!r) return {};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  httplib::Client client_;
};

/// The enqueue body of `spec` for POST /api/v1/jobs.
std::string enqueue_body(const json& spec) { return json{{"spec", spec}}.dump(); }

/// Polls GET /api/v1/jobs/ID until its state is final; returns the job object.
json wait_final(Http& http, std::int64_t id) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  json job;
  while (Clock::now() < deadline) {
    job = http.get("/api/v1/jobs/" + std::to_string(id)).body.value("job", json::object());
    if (is_final_state(job.value("state", ""))) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "job " << id << " not final: " << job.dump();
  return job;
}

/// Row `row` of a (frames, ...) dataset, as doubles.
std::vector<double> file_row(const H5File& f, const std::string& path, std::size_t row) {
  const auto all = f.doubles(path);
  const auto dims = f.dims(path);
  std::size_t per_row = 1;
  for (std::size_t i = 1; i < dims.size(); ++i) per_row *= dims[i];
  if ((row + 1) * per_row > all.size()) return {};
  return {all.begin() + static_cast<std::ptrdiff_t>(row * per_row),
          all.begin() + static_cast<std::ptrdiff_t>((row + 1) * per_row)};
}

/// `values` (JSON numbers, null for NaN; nested rows flattened) as doubles.
std::vector<double> flat(const json& values) {
  std::vector<double> out;
  for (const json& v : values) {
    if (v.is_array()) {
      const auto inner = flat(v);
      out.insert(out.end(), inner.begin(), inner.end());
    } else {
      out.push_back(v.is_null() ? std::nan("") : v.get<double>());
    }
  }
  return out;
}

void expect_same(const std::vector<double>& a, const std::vector<double>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool same = (std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i];
    if (!same && ++bad < 4) ADD_FAILURE() << what << " bin " << i << ": " << a[i] << " vs " << b[i];
  }
  EXPECT_EQ(bad, 0u) << what;
}

// ---------------------------------------------------------------- one daemon, finished jobs

class HttpApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    space_ = new TempSpace;
    daemon_ = new DaemonProcess(*space_, 1, "[http]\nlisten = \"127.0.0.1:0\"\n");
    url_ = wait_url(*space_);
    master_ = make_series(*space_, "s", kFrames);
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete space_;
  }
  void SetUp() override {
    ASSERT_FALSE(url_.empty()) << "no URL file; log:\n" << daemon_->log();
    http_ = std::make_unique<Http>(port_of(url_));
    token_ = read_token(*space_);
  }
  /// Enqueues over HTTP and waits for the job to end; returns its id.
  std::int64_t run_job(json spec) {
    const Answer a = http_->post("/api/v1/jobs", enqueue_body(spec), token_);
    EXPECT_EQ(a.status, 200) << a.body.dump();
    const std::int64_t id = a.body.value("job_id", std::int64_t{0});
    EXPECT_GT(id, 0);
    EXPECT_EQ(wait_final(*http_, id).value("state", ""), "succeeded");
    return id;
  }

  static TempSpace* space_;
  static DaemonProcess* daemon_;
  static std::string url_, master_;
  std::unique_ptr<Http> http_;
  std::string token_;
};
TempSpace* HttpApiTest::space_ = nullptr;
DaemonProcess* HttpApiTest::daemon_ = nullptr;
std::string HttpApiTest::url_;
std::string HttpApiTest::master_;

/// The main loop's side of the bridge: identical reads queued in one turn cost one call of the
/// handler and all get its answer; a write runs every time and later reads are answered anew;
/// `max` bounds the handler's calls.
TEST(MainLoopBridgeTest, IdenticalReadsInOneTurnShareOneAnswer) {
  using azflow::daemon::MainLoopBridge;
  MainLoopBridge bridge;
  const nlohmann::json list = {{"v", 1}, {"verb", "list"}, {"all", true}};
  const nlohmann::json enqueue = {{"v", 1}, {"verb", "enqueue"}, {"spec", {{"x", 1}}}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const auto wait_queued = [&](std::size_t n) {
    while (bridge.queued() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return bridge.queued();
  };
  std::map<std::string, int> calls_of;
  int n = 0;
  const auto handle = [&](std::string_view text) {
    ++calls_of[nlohmann::json::parse(text).value("verb", "")];
    return nlohmann::json{{"ok", true}, {"result", {{"call", ++n}}}};
  };
  const auto call_of = [](const std::optional<nlohmann::json>& a) {
    return a ? a->at("result").value("call", 0) : 0;
  };

  // 20 identical lists and a stats, queued at once (reads only): one call each
  std::vector<nlohmann::json> reads(20, list);
  reads.push_back({{"v", 1}, {"verb", "stats"}});
  std::vector<std::optional<nlohmann::json>> answers(reads.size());
  std::vector<std::thread> callers;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    callers.emplace_back([&, i] { answers[i] = bridge.call(reads[i], std::chrono::seconds(20)); });
  }
  ASSERT_EQ(wait_queued(reads.size()), reads.size());
  EXPECT_EQ(bridge.serve(handle, 100), reads.size());
  for (auto& c : callers) c.join();
  EXPECT_EQ(calls_of["list"], 1);
  EXPECT_EQ(calls_of["stats"], 1);
  std::set<int> list_answers;
  for (std::size_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(answers[i].has_value()) << i;
    list_answers.insert(call_of(answers[i]));
  }
  EXPECT_EQ(list_answers.size(), 1u);  // one answer for all 20 lists

  // in order list, enqueue, enqueue, list: each enqueue runs, and the list after them is
  // answered anew (it must see their effect)
  const nlohmann::json sequence[] = {list, enqueue, enqueue, list};
  std::vector<std::optional<nlohmann::json>> ordered(4);
  std::vector<std::thread> in_order;
  for (std::size_t i = 0; i < 4; ++i) {
    in_order.emplace_back(
        [&, i] { ordered[i] = bridge.call(sequence[i], std::chrono::seconds(20)); });
    ASSERT_EQ(wait_queued(i + 1), i + 1);
  }
  calls_of.clear();
  EXPECT_EQ(bridge.serve(handle, 100), 4u);
  for (auto& c : in_order) c.join();
  EXPECT_EQ(calls_of["enqueue"], 2);
  EXPECT_EQ(calls_of["list"], 2);
  EXPECT_NE(call_of(ordered[1]), call_of(ordered[2]));
  EXPECT_NE(call_of(ordered[0]), call_of(ordered[3]));

  // `max` bounds the handler's calls per turn; the rest waits for the next turn
  std::vector<std::thread> more;
  for (const char* verb : {"workers", "peers", "status"}) {
    more.emplace_back([&bridge, verb] {
      EXPECT_TRUE(bridge.call({{"v", 1}, {"verb", verb}}, std::chrono::seconds(20)));
    });
  }
  ASSERT_EQ(wait_queued(3), 3u);
  EXPECT_EQ(bridge.serve(handle, 2), 2u);
  EXPECT_EQ(bridge.queued(), 1u);
  EXPECT_EQ(bridge.serve(handle, 2), 1u);
  for (auto& c : more) c.join();
}

// The page (docs/http.md "The page") and its assets, embedded at build time: each path answers
// 200 with its content type and the text of its source file (web/, Debian's Chart.js).
TEST_F(HttpApiTest, ServesThePageAndItsAssets) {
  httplib::Client client("127.0.0.1", port_of(url_));
  const fs::path web = fs::path(AZFLOW_SOURCE_DIR_PATH) / "web";
  const auto file_text = [](const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  };
  const struct {
    const char* path;
    const char* type;
    fs::path file;
  } assets[] = {
      {"/", "text/html; charset=utf-8", web / "index.html"},
      {"/static/app.js", "text/javascript; charset=utf-8", web / "app.js"},
      {"/static/style.css", "text/css; charset=utf-8", web / "style.css"},
      {"/static/chart.min.js", "text/javascript; charset=utf-8",
       "/usr/share/javascript/chart.js/chart.min.js"},
  };
  for (const auto& a : assets) {
    const auto r = client.Get(a.path);
    ASSERT_TRUE(r) << a.path;
    EXPECT_EQ(r->status, 200) << a.path;
    EXPECT_EQ(r->get_header_value("Content-Type"), a.type) << a.path;
    const std::string expected = file_text(a.file);
    ASSERT_FALSE(expected.empty()) << a.file;
    EXPECT_TRUE(r->body == expected)
        << a.path << ": " << r->body.size() << " bytes, file " << expected.size();
  }
  const auto missing = client.Get("/static/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpApiTest, PortZeroIsLoggedAndWrittenToTheRuntimeDir) {
  EXPECT_TRUE(url_.starts_with("http://127.0.0.1:")) << url_;
  EXPECT_GT(port_of(url_), 0);
  EXPECT_NE(daemon_->log().find("http: listening on " + url_), std::string::npos) << daemon_->log();
  const Answer index = http_->get("/api/v1");
  EXPECT_EQ(index.status, 200);
  EXPECT_TRUE(index.body.contains("endpoints"));
}

TEST_F(HttpApiTest, TokenFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat((space_->path("state") / "http.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(token_.size(), 64u);
}

TEST_F(HttpApiTest, PostsNeedTheBearerToken) {
  const std::string body = enqueue_body(job_spec({master_}, ""));
  for (const std::string& token : {std::string(), std::string("wrong"), token_ + "x"}) {
    const Answer a = http_->post("/api/v1/jobs", body, token);
    EXPECT_EQ(a.status, 401) << token;
    EXPECT_EQ(a.body["error"].value("field", ""), "Authorization");
    EXPECT_EQ(http_->post("/api/v1/jobs/1/cancel", "", token).status, 401);
    EXPECT_EQ(http_->post("/api/v1/jobs/1/retry", "", token).status, 401);
  }
  // nothing was enqueued by the refused requests
  const Answer before = http_->get("/api/v1/jobs");
  const std::size_t jobs = before.body["jobs"].size();
  const Answer ok = http_->post("/api/v1/jobs", body, token_);
  EXPECT_EQ(ok.status, 200) << ok.body.dump();
  EXPECT_EQ(ok.body.value("state", ""), "queued");
  const std::int64_t id = ok.body.value("job_id", std::int64_t{0});
  wait_final(*http_, id);
  EXPECT_EQ(http_->get("/api/v1/jobs").body["jobs"].size(), jobs + 1);
}

TEST_F(HttpApiTest, MalformedPostsNameTheField) {
  const auto expect_field = [&](const std::string& body, const std::string& field) {
    const Answer a = http_->post("/api/v1/jobs", body, token_);
    EXPECT_EQ(a.status, 400) << body << " -> " << a.body.dump();
    EXPECT_EQ(a.body["error"].value("field", "?"), field) << body << " -> " << a.body.dump();
    EXPECT_FALSE(a.body["error"].value("message", "").empty());
  };
  expect_field("{not json", "");
  expect_field("[1, 2]", "");
  expect_field("{}", "spec");
  expect_field(R"({"spec": {"datasets": 5}})", "spec.datasets");
  json spec = job_spec({master_}, "");
  spec["settings"]["npt_rad"] = -3;
  expect_field(enqueue_body(spec), "spec.settings.npt_rad");
  expect_field(json{{"spec", job_spec({master_}, "")}, {"priority", "high"}}.dump(), "priority");
  expect_field(json{{"spec", job_spec({master_}, "")}, {"verb", "shutdown"}}.dump(), "verb");
  // job ids in the URL
  const Answer bad_id = http_->get("/api/v1/jobs/abc");
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_EQ(bad_id.body["error"].value("field", ""), "job_id");
  const Answer missing = http_->get("/api/v1/jobs/9999");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body["error"].value("field", ""), "job_id");
  EXPECT_EQ(http_->post("/api/v1/jobs/9999/cancel", "", token_).status, 404);
  const Answer retry = http_->post("/api/v1/jobs/9999/retry", "", token_);
  EXPECT_EQ(retry.status, 404);
  EXPECT_EQ(retry.body["error"].value("field", ""), "job_id");
  EXPECT_EQ(http_->get("/api/v1/no/such").status, 404);
}

TEST_F(HttpApiTest, JobsListAndJobObjects) {
  const fs::path out = space_->path("list.h5");
  const std::int64_t id = run_job(job_spec({master_}, out.string()));
  const Answer list = http_->get("/api/v1/jobs");
  ASSERT_EQ(list.status, 200);
  json job;
  for (const json& j : list.body["jobs"]) {
    if (j.value("id", 0) == id) job = j;
  }
  ASSERT_TRUE(job.is_object()) << list.body.dump();
  EXPECT_EQ(job.value("job_id", 0), id);
  EXPECT_EQ(job.value("state", ""), "succeeded");
  EXPECT_EQ(job.value("frames_total", 0), kFrames);
  EXPECT_EQ(job.value("frames_done", 0), kFrames);
  EXPECT_EQ(job.value("frames_failed", -1), 0);
  EXPECT_EQ(job.value("frames_published", 0), kFrames);
  EXPECT_TRUE(job["frames_per_s"].is_number()) << job.dump();
  EXPECT_TRUE(job["created"].is_string());
  EXPECT_EQ(job.value("dataset", ""), master_);
  EXPECT_EQ(job.value("output", ""), out.string());
  // filters map onto the list verb's
  const Answer running = http_->get("/api/v1/jobs?state=running");
  EXPECT_EQ(running.status, 200);
  EXPECT_TRUE(running.body["jobs"].empty()) << running.body.dump();
  const Answer bad_state = http_->get("/api/v1/jobs?state=sleeping");
  EXPECT_EQ(bad_state.status, 400);
  EXPECT_EQ(bad_state.body["error"].value("field", ""), "state");

  // one job: the control protocol's status object, with its settings and failed frames
  const Answer one = http_->get("/api/v1/jobs/" + std::to_string(id));
  ASSERT_EQ(one.status, 200);
  const json& j = one.body["job"];
  EXPECT_EQ(j["spec"]["settings"].value("npt_rad", 0), 200);
  EXPECT_EQ(j["spec"]["settings"].value("unit", ""), "q_nm^-1");
  EXPECT_TRUE(j["frame_errors"].is_array() && j["frame_errors"].empty());
  EXPECT_EQ(j["shards"].value("done", 0), j["shards"].value("total", -1));
  ControlClient control(daemon_->endpoint());
  const json status = job_status(control, id);
  EXPECT_EQ(j.value("state", ""), status.value("state", "?"));
  EXPECT_EQ(j.value("frames_done", -1), status.value("frames_done", -2));
  EXPECT_EQ(j["spec"], status["spec"]);
}

TEST_F(HttpApiTest, FramesOfAFinishedJobAreTheRowsOfItsOutput) {
  const fs::path out = space_->path("frames.h5");
  const std::int64_t id = run_job(job_spec({master_}, out.string()));
  const std::string base = "/api/v1/jobs/" + std::to_string(id);
  H5File f(out.string());
  const auto q = f.doubles("/entry/integrate/q");
  for (const int k : {0, 7, kFrames - 1}) {
    const Answer a = http_->get(base + "/frames/" + std::to_string(k));
    ASSERT_EQ(a.status, 200) << a.body.dump();
    EXPECT_EQ(a.body.value("frame", -1), k);
    EXPECT_EQ(a.body.value("unit", ""), "q_nm^-1");
    EXPECT_EQ(a.body.value("source", ""), "output");
    EXPECT_FALSE(a.body.contains("azimuthal"));
    expect_same(flat(a.body["radial"]), q, "radial");
    expect_same(flat(a.body["I"]), file_row(f, "/entry/integrate/I", k),
                "I row " + std::to_string(k));
    expect_same(flat(a.body["sigma"]), file_row(f, "/entry/integrate/I_errors", k),
                "sigma row " + std::to_string(k));
    EXPECT_EQ(a.body["I"].size(), kBins);
  }
  const Answer latest = http_->get(base + "/frames/latest");
  ASSERT_EQ(latest.status, 200);
  expect_same(flat(latest.body["I"]), file_row(f, "/entry/integrate/I", kFrames - 1), "latest");
  const Answer past = http_->get(base + "/frames/" + std::to_string(kFrames));
  EXPECT_EQ(past.status, 404);
  EXPECT_EQ(past.body["error"].value("field", ""), "frame");
  EXPECT_EQ(http_->get(base + "/frames/x1").status, 400);

  const Answer sum = http_->get(base + "/sum");
  ASSERT_EQ(sum.status, 200) << sum.body.dump();
  expect_same(flat(sum.body["I"]), f.doubles("/entry/sum/I"), "sum I");
  expect_same(flat(sum.body["sigma"]), f.doubles("/entry/sum/I_errors"), "sum sigma");
  EXPECT_EQ(sum.body.value("frames", 0), kFrames);

  const Answer axes = http_->get(base + "/axes");
  ASSERT_EQ(axes.status, 200);
  expect_same(flat(axes.body["radial"]), q, "axes radial");
  expect_same(flat(axes.body["radial_edges"]), f.doubles("/entry/integrate/q_edges"), "edges");
}

TEST_F(HttpApiTest, FramesOf2DJobsAreRowsOfAzimuthalBins) {
  const fs::path out = space_->path("cake.h5");
  json spec = job_spec({master_}, out.string());
  spec["settings"]["npt_rad"] = 40;
  spec["settings"]["npt_azim"] = 6;
  const std::int64_t id = run_job(spec);
  H5File f(out.string());
  const Answer a = http_->get("/api/v1/jobs/" + std::to_string(id) + "/frames/3");
  ASSERT_EQ(a.status, 200) << a.body.dump();
  ASSERT_EQ(a.body["I"].size(), 6u);
  EXPECT_EQ(a.body["I"][0].size(), 40u);
  expect_same(flat(a.body["azimuthal"]), f.doubles("/entry/integrate/chi"), "azimuthal");
  expect_same(flat(a.body["I"]), file_row(f, "/entry/integrate/I", 3), "2D row 3");
  const Answer sum = http_->get("/api/v1/jobs/" + std::to_string(id) + "/sum");
  ASSERT_EQ(sum.status, 200);
  EXPECT_EQ(sum.body["I"].size(), 6u);
}

TEST_F(HttpApiTest, CancelAndRetryOfFinishedJobsAreRefusedWithTheField) {
  const std::int64_t id = run_job(job_spec({master_}, space_->path("done.h5").string()));
  const std::string base = "/api/v1/jobs/" + std::to_string(id);
  const Answer cancel = http_->post(base + "/cancel", "", token_);
  EXPECT_EQ(cancel.status, 409) << cancel.body.dump();
  EXPECT_EQ(cancel.body["error"].value("field", ""), "job_id");
  const Answer retry = http_->post(base + "/retry", "", token_);
  EXPECT_EQ(retry.status, 400) << retry.body.dump();
  EXPECT_EQ(retry.body["error"].value("field", ""), "job_id");
  EXPECT_NE(retry.body["error"].value("message", "").find("nothing to retry"), std::string::npos);
}

TEST_F(HttpApiTest, WorkersPeersAndStats) {
  run_job(job_spec({master_}, space_->path("stats.h5").string()));
  const Answer workers = http_->get("/api/v1/workers");
  ASSERT_EQ(workers.status, 200);
  std::set<std::string> roles;
  for (const json& w : workers.body["workers"]) roles.insert(w.value("role", ""));
  EXPECT_TRUE(roles.contains("reducer") && roles.contains("integrate") && roles.contains("source"))
      << workers.body.dump();
  const Answer peers = http_->get("/api/v1/peers");
  ASSERT_EQ(peers.status, 200);
  EXPECT_TRUE(peers.body["node"].is_null());
  EXPECT_TRUE(peers.body["peers"].is_array());
  const Answer stats = http_->get("/api/v1/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_GE(stats.body["jobs"].value("succeeded", 0), 1);
  EXPECT_GE(stats.body.value("frames_done", 0), kFrames);
  ControlClient control(daemon_->endpoint());
  const json ctl = control.result({{"verb", "stats"}});
  EXPECT_EQ(stats.body["jobs"], ctl["jobs"]);
  EXPECT_EQ(stats.body.value("frames_done", -1), ctl.value("frames_done", -2));
}

// ---------------------------------------------------------------- running jobs, stalls, events

/// A raw TCP connection to 127.0.0.1:port (closed when destroyed).
struct RawSocket {
  explicit RawSocket(int port) : fd(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawSocket() { ::close(fd); }
  int fd;
  bool connected = false;
};

TEST(HttpApiLive, RunningJobFramesStalledClientsAndEvents) {
  TempSpace space;
  DaemonProcess daemon(space, 1, "[http]\nlisten = \"127.0.0.1:0\"\n",
                       {{"AZFLOW_TEST_DELAY_MS_REDUCER", "60"}});
  const std::string url = wait_url(space);
  ASSERT_FALSE(url.empty()) << daemon.log();
  const std::string master = make_series(space, "s", kFrames);
  const int port = port_of(url);
  Http http(port);

  // stalled clients: half a request, and a connection that sends nothing
  std::vector<std::unique_ptr<RawSocket>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(std::make_unique<RawSocket>(port));
    ASSERT_TRUE(stalled.back()->connected);
    const std::string half = "GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ";
    if (i % 2 == 0) {
      ASSERT_GT(::send(stalled.back()->fd, half.data(), half.size(), 0), 0);
    }
  }

  // the event stream, read on its own thread
  std::atomic<bool> stop_events{false};
  std::string events;
  std::mutex events_mutex;
  std::thread reader([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30);
    client.Get("/api/v1/events", [&](const char* data, std::size_t n) {
      std::lock_guard lock(events_mutex);
      events.append(data, n);
      return !stop_events.load();
    });
  });

  const Answer enqueued =
      http.post("/api/v1/jobs", enqueue_body(job_spec({master}, space.path("o.h5").string())),
                read_token(space));
  ASSERT_EQ(enqueued.status, 200) << enqueued.body.dump();
  const std::int64_t id = enqueued.body.value("job_id", std::int64_t{0});
  const std::string base = "/api/v1/jobs/" + std::to_string(id);

  // the control socket answers at once while the stalled clients hold their connections
  ControlClient control(daemon.endpoint());
  const auto t0 = Clock::now();
  ASSERT_FALSE(control.call({{"verb", "status"}}).is_null());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));

  // while it runs (60 ms per frame): frames from the live cache, the running mean
  json live;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    const Answer a = http.get(base + "/frames/latest");
    if (a.status == 200 && a.body.value("source", "") == "live") {
      live = a.body;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(live.is_object()) << "no live frame while the job ran";
  // a ZeroMQ subscriber that joins now, after frame 0, still gets the axes (repeated every second)
  zmq::context_t context(1);
  zmq::socket_t late(context, zmq::socket_type::sub);
  late.set(zmq::sockopt::linger, 0);
  late.set(zmq::sockopt::subscribe, "job.");
  late.connect(daemon.live_endpoint());
  EXPECT_EQ(live["I"].size(), kBins);
  EXPECT_EQ(live["radial"].size(), kBins);
  const Answer mean = http.get(base + "/sum");
  EXPECT_EQ(mean.status, 200) << mean.body.dump();
  EXPECT_EQ(mean.body.value("source", ""), "live");
  EXPECT_GE(mean.body.value("frames", 0), 1);
  const json job_running = http.get(base).body["job"];
  EXPECT_EQ(job_running.value("state", ""), "running") << job_running.dump();

  const json final = wait_final(http, id);
  EXPECT_EQ(final.value("state", ""), "succeeded");
  std::size_t late_headers = 0, late_with_axes = 0, with_url = 0;
  while (true) {
    std::vector<zmq::message_t> parts;
    if (!zmq::recv_multipart(late, std::back_inserter(parts), zmq::recv_flags::dontwait)) break;
    const json header = json::parse(parts.at(1).to_string_view());
    ++late_headers;
    late_with_axes += header.contains("radial") && header["radial"].size() == kBins;
    with_url += header.value("axes_url", "") == base + "/axes";
  }
  EXPECT_GT(late_headers, 0u);
  EXPECT_EQ(with_url, late_headers);
  EXPECT_GE(late_with_axes, 1u) << late_headers << " headers seen by the late subscriber";
  // the frame served live is the frame written to the output
  H5File f(space.path("o.h5").string());
  const std::int64_t k = live.value("frame", std::int64_t{-1});
  ASSERT_GE(k, 0);
  expect_same(flat(live["I"]), file_row(f, "/entry/integrate/I", static_cast<std::size_t>(k)),
              "live frame");

  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the stream's job poll
  stop_events = true;
  reader.join();
  std::lock_guard lock(events_mutex);
  EXPECT_NE(events.find("event: jobs\n"), std::string::npos) << events.substr(0, 500);
  EXPECT_NE(events.find("event: frame\n"), std::string::npos);
  EXPECT_NE(events.find("\"url\":\"" + base + "/frames/"), std::string::npos);
  EXPECT_NE(events.find("\"axes\":\"" + base + "/axes\""), std::string::npos);
  EXPECT_NE(events.find("event: job\n"), std::string::npos);
  EXPECT_NE(events.find("\"state\":\"succeeded\""), std::string::npos);

  // SIGTERM with an event stream open and a client stalled: azflowd still stops at once
  std::thread open_stream([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30);
    client.Get("/api/v1/events", [](const char*, std::size_t) { return true; });
  });
  RawSocket half(port);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t_stop = Clock::now();
  const int status = daemon.stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(Clock::now() - t_stop, std::chrono::seconds(3));
  open_stream.join();
  EXPECT_FALSE(fs::exists(space.path("run") / (space.instance() + ".http")));
}

TEST(HttpApiLive, RunningJobFramesOutOfTheCacheComeFromCommittedShards) {
  TempSpace space;
  DaemonProcess daemon(space, 1, "[http]\nlisten = \"127.0.0.1:0\"\n",
                       {{"AZFLOW_TEST_DELAY_MS_REDUCER", "20"}});
  const std::string url = wait_url(space);
  ASSERT_FALSE(url.empty()) << daemon.log();
  constexpr int kMany = 100;  // two shards of 50; frame 0 leaves the cache after 64 more
  const std::string master = make_series(space, "m", kMany);
  Http http(port_of(url));
  const Answer enqueued =
      http.post("/api/v1/jobs", enqueue_body(job_spec({master}, space.path("o.h5").string())),
                read_token(space));
  ASSERT_EQ(enqueued.status, 200) << enqueued.body.dump();
  const std::int64_t id = enqueued.body.value("job_id", std::int64_t{0});
  const std::string base = "/api/v1/jobs/" + std::to_string(id);
  json from_shard;
  std::set<std::string> sources;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline && from_shard.is_null()) {
    const Answer a = http.get(base + "/frames/0");
    if (a.status == 200) {
      sources.insert(a.body.value("source", ""));
      if (a.body.value("source", "") == "shard") from_shard = a.body;
      if (a.body.value("source", "") == "output") break;  // ended before we looked
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(from_shard.is_object()) << "sources seen: " << json(sources).dump();
  EXPECT_EQ(from_shard.value("frame", -1), 0);
  EXPECT_EQ(wait_final(http, id).value("state", ""), "succeeded");
  H5File f(space.path("o.h5").string());
  expect_same(flat(from_shard["I"]), file_row(f, "/entry/integrate/I", 0), "shard frame 0");
  expect_same(flat(from_shard["sigma"]), file_row(f, "/entry/integrate/I_errors", 0),
              "shard sigma 0");
}

TEST(HttpApiLive, TwoHundredConcurrentGetsWhileAJobRuns) {
  TempSpace space;
  DaemonProcess daemon(space, 1, "[http]\nlisten = \"127.0.0.1:0\"\n",
                       {{"AZFLOW_TEST_DELAY_MS_REDUCER", "30"}});
  const std::string url = wait_url(space);
  ASSERT_FALSE(url.empty()) << daemon.log();
  const std::string master = make_series(space, "s", kFrames);
  const int port = port_of(url);
  Http http(port);
  const Answer enqueued =
      http.post("/api/v1/jobs", enqueue_body(job_spec({master}, space.path("o.h5").string())),
                read_token(space));
  ASSERT_EQ(enqueued.status, 200) << enqueued.body.dump();
  const std::string base = "/api/v1/jobs/" + std::to_string(enqueued.body.value("job_id", 0));
  constexpr int kClients = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      Http mine(port);
      const Answer a = mine.get(i % 2 == 0 ? base : std::string("/api/v1/stats"));
      ok += a.status == 200 && a.body.is_object() && !a.body.contains("error");
    });
  }
  ControlClient control(daemon.endpoint());
  const auto t0 = Clock::now();
  EXPECT_FALSE(control.call({{"verb", "status"}}).is_null());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients);
  EXPECT_EQ(wait_final(http, enqueued.body.value("job_id", 0)).value("state", ""), "succeeded");
}

TEST(HttpApiPorts, APortInUseLeavesTheDaemonServing) {
  // hold a listening socket on a free port
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);

  TempSpace space;
  DaemonProcess daemon(space, 1, "[http]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  ControlClient control(daemon.endpoint());
  ASSERT_TRUE(control.wait_ready()) << daemon.log();
  EXPECT_NE(daemon.log().find("http: cannot listen on 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << daemon.log();
  EXPECT_FALSE(fs::exists(space.path("run") / (space.instance() + ".http")));
  ::close(fd);
}

/// An IPv4 address of this host that is not loopback ("" if none).
std::string non_loopback_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    if (!std::string(text).starts_with("127.")) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

TEST(HttpApiPorts, ReadsFromOtherHostsNeedTheToken) {
  const std::string address = non_loopback_ipv4();
  if (address.empty()) GTEST_SKIP() << "no non-loopback IPv4 address on this host";
  TempSpace space;
  DaemonProcess daemon(space, 1, "[http]\nlisten = \"0.0.0.0:0\"\n");
  const std::string url = wait_url(space);
  ASSERT_FALSE(url.empty()) << daemon.log();
  const int port = port_of(url);
  EXPECT_EQ(Http(port).get("/api/v1/jobs").status, 200);  // loopback: no token
  httplib::Client remote(address, port);
  remote.set_connection_timeout(5);
  const auto without = remote.Get("/api/v1/jobs");
  ASSERT_TRUE(without) << "cannot reach " << address << ":" << port;
  EXPECT_EQ(without->status, 401);
  EXPECT_EQ(json::parse(without->body)["error"].value("field", ""), "Authorization");
  const auto with = remote.Get("/api/v1/jobs", {{"Authorization", "Bearer " + read_token(space)}});
  ASSERT_TRUE(with);
  EXPECT_EQ(with->status, 200);
  EXPECT_TRUE(json::parse(with->body).contains("jobs"));
}

TEST(HttpApiPorts, OffAndInvalidListenAddresses) {
  TempSpace space;
  {
    DaemonProcess daemon(space, 1, "[http]\nlisten = \"\"\n");
    ControlClient control(daemon.endpoint());
    ASSERT_TRUE(control.wait_ready()) << daemon.log();
    EXPECT_EQ(daemon.log().find("http: listening"), std::string::npos) << daemon.log();
    EXPECT_FALSE(fs::exists(space.path("state") / "http.token"));
  }
  for (const std::string bad : {"8770", "127.0.0.1:99999", ":8770", "::1:8770"}) {
    const CommandResult r = run_command(std::string(AZFLOWD_BIN) + " --state-dir " +
                                        quote(space.path("s2").string()) + " --http " + quote(bad));
    EXPECT_EQ(r.code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("--http"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace azflow::testing

namespace azflow::testing {
namespace {

TEST(HttpConfig, ListenKeyDefaultsOverridesAndErrors) {
  TempSpace space;
  const fs::path file = space.path("c.toml");
  EXPECT_EQ(daemon::load_config(std::nullopt).http_listen, "127.0.0.1:8770");
  std::ofstream(file) << "[http]\nlisten = \"[::1]:0\"\n";
  EXPECT_EQ(daemon::load_config(file).http_listen, "[::1]:0");
  daemon::ConfigOverrides off;
  off.http_listen = "";
  EXPECT_EQ(daemon::load_config(file, off).http_listen, "");
  EXPECT_NE(daemon::describe(daemon::load_config(file)).find("[http]\nlisten = '[::1]:0'"),
            std::string::npos);
  for (const char* bad : {"\"localhost\"", "\"h:70000\"", "8770", "\"h:\""}) {
    std::ofstream(file) << "[http]\nlisten = " << bad << "\n";
    try {
      (void)daemon::load_config(file);
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("http.listen"), std::string::npos) << e.what();
    }
  }
  std::ofstream(file) << "[http]\nport = 1\n";
  EXPECT_THROW((void)daemon::load_config(file), Error);
  EXPECT_EQ(daemon::parse_listen("[::1]:8080", "x"), (std::pair<std::string, int>{"::1", 8080}));
  EXPECT_EQ(daemon::parse_listen("0.0.0.0:0", "x"), (std::pair<std::string, int>{"0.0.0.0", 0}));
}

}  // namespace
}  // namespace azflow::testing
