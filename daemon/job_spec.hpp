#pragma once
// A job as a client asks for it: which frames, which geometry and settings, where to write.
// Carried as JSON in the `enqueue` request (docs/protocol.md, "JobSpec") and stored as JSON in
// the job store.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/dtype.hpp"
#include "base/error.hpp"
#include "base/frame_range.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/reduce/result_writer.hpp"

namespace azflow::daemon {

/// An Error about one field of a request or a job spec; field() is its JSON path
/// ("settings.npt_rad", "datasets[1]", "v", "" for the whole message). Category kConfig.
class FieldError : public Error {
 public:
  FieldError(std::string field, const std::string& message)
      : Error(ErrorCategory::kConfig,
              (field.empty() ? std::string("request") : field) + ": " + message),
        field_(std::move(field)),
        message_(message) {}

  /// JSON path of the offending field.
  [[nodiscard]] const std::string& field() const noexcept { return field_; }
  /// The message without the field prefix.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string field_;
  std::string message_;
};

/// Which daemons share a split job (docs/federation.md). JSON field "nodes": absent or null =
/// local only; "all" = this node and every connected peer; an integer N >= 1 = this node and at
/// most N - 1 peers; a list of node names = this node and those peers.
struct NodeSelection {
  enum class Kind { kLocal, kAll, kCount, kNames };
  Kind kind = Kind::kLocal;
  std::size_t count = 0;           ///< kCount: nodes in all, this one included
  std::vector<std::string> names;  ///< kNames: peers allowed to take shards
  bool operator==(const NodeSelection&) const = default;
};

/// What the source stage learnt from a stream job's start message (docs/streams.md, "Stream
/// jobs in the daemon"): set by the daemon when the start message arrives, absent before.
struct StreamSeries {
  std::uint64_t series_id = 0;
  std::string series_unique_id;
  std::size_t rows = 0, cols = 0;  ///< image_size_y, image_size_x
  DType dtype = DType::kUint32;    ///< image_dtype (stream v1: bit_depth_image or first image)
  std::size_t images = 0;          ///< number_of_images: the job's frames
  /// The start message's pixel_mask of the channel, rows x cols little-endian uint32 (nonzero =
  /// bad), written by the source stage into the job's folder; "" = the start had none.
  std::string pixel_mask_path;
  bool geometry_from_start = false;  ///< no PONI was given: poni_text is the start's geometry
  bool operator==(const StreamSeries&) const = default;
};

/// A stream job's input (JSON "stream"): one series received from a detector's ZeroMQ PUSH
/// socket, from its start to its end message.
struct StreamSpec {
  std::string endpoint;            ///< e.g. tcp://dcu:31001 (the source connects a PULL socket)
  std::string format = "stream2";  ///< "stream2" (DECTRIS Stream V2) or "v1" (legacy stream v1)
  std::string channel;             ///< channel of the image data map ("" = the first one)
  /// Seconds without a message, once the series started, after which the images not yet
  /// received fail as missing (waiting for the start message has no limit: cancel ends it).
  double idle_timeout_s = 60;
  /// MiB the rings reserve per frame before the series' image size is known (an image larger
  /// than the rings' slots fails its row naming this field).
  std::size_t max_frame_mib = 18;
  /// Folder of the series' raw spool (stages/source/raw_spool.hpp: every accepted image's stored
  /// bytes, EIGER layout), absolute; "" = none. It must exist at enqueue, inside the daemon's
  /// allowed output folders; an existing spool of the series there fails the job at its start.
  std::string save_raw;
  std::optional<StreamSeries> series;  ///< set by the daemon when the start message arrives
  bool operator==(const StreamSpec&) const = default;
};

/// One integration job. Defaults are those of `azflow integrate` (cli/integrate_options.hpp).
struct JobSpec {
  /// split: every worker shares the job's frames; bulk: one dataset per worker.
  enum class Mode { kSplit, kBulk };

  std::vector<std::string> datasets;  ///< absolute paths of master/plain HDF5 files (>= 1)
  std::string dataset_path;           ///< dataset inside each file ("" = auto, as azflow integrate)
  std::string poni_text;              ///< PONI file contents (what the daemon uses)
  std::string poni_path;              ///< where the PONI came from (absolute; for the record)
  integrate::IntegrationSettings settings;  ///< validated settings (dummy: see dummy_auto)
  /// True: settings.dummy is unset here and becomes the dataset dtype's maximum for unsigned
  /// integer data (the Eiger gap value), exactly as `azflow integrate` without --dummy/--no-dummy;
  /// resolved by settings_for() once the dtype is known.
  bool dummy_auto = true;
  std::string mask_path, dark_path, flat_path;  ///< image specs ("FILE.h5[::/ds]", .npy, EDF)
  bool use_file_mask = true;  ///< combine the detector's pixel_mask from the input file
  std::string output_path;    ///< absolute output path ("" = daemon's default location)
  bool overwrite = false;     ///< JSON "overwrite": replace a file already at output_path
  /// Output format, JSON "format": "nexus" (default), "nxazint", "xy" or "xy-frames"
  /// (stages/reduce/result_writer.hpp); the xy formats need a 1D job (settings.npt_azim 0).
  reduce::OutputFormat format = reduce::OutputFormat::kNexus;
  Mode mode = Mode::kSplit;
  NodeSelection nodes;  ///< federation: which daemons share the frames (split mode only)
  /// JSON "frames": which frames of the input series (the datasets, one after the other) the
  /// job integrates, {"first": A, "last": B} = frames A..B-1 ("last" exclusive, as a Python
  /// slice; null = to the end), or null/absent = all. Checked against the frame count at enqueue.
  /// Job frames stay 0..n-1 everywhere (shards, rows, progress); job frame k is input frame
  /// frame_offset() + k, which the source stage reads and the output records as frame_index.
  std::optional<FrameSlice> frames;

  /// JSON "follow": {"idle_timeout_s": S} (or null/absent = off). Set: the input is still being
  /// written (azflow integrate --follow): the job has nimages x ntrigger frames from the master,
  /// one shard on this node (no federation), and the source stage waits for each frame until S
  /// seconds pass without a new one; frames never written are failed rows.
  std::optional<double> follow_timeout_s;

  /// JSON "stream" (null/absent = a file job): the job's frames come from a detector stream
  /// instead of `datasets` (then empty). Local only, no frame range, no follow.
  std::optional<StreamSpec> stream;

  /// The input frame of job frame 0 (frames->first, or 0 for all frames).
  [[nodiscard]] std::int64_t frame_offset() const noexcept {
    return frames ? static_cast<std::int64_t>(frames->first) : 0;
  }

  /// The settings to integrate a dataset of `dtype` with (dummy_auto resolved).
  [[nodiscard]] integrate::IntegrationSettings settings_for(DType dtype) const;
};

/// The series of a stream spec as JSON (StreamSeries fields by name); the inverse of
/// stream_series_from_json, which throws FieldError naming `prefix` + the field.
nlohmann::json to_json(const StreamSeries& series);
StreamSeries stream_series_from_json(const nlohmann::json& json, std::string_view prefix = "");

/// Default idle timeout of a follow job [s] (JobSpec::follow_timeout_s).
inline constexpr double kDefaultFollowTimeout_s = 30;

/// "split" or "bulk".
std::string_view mode_name(JobSpec::Mode mode) noexcept;

/// The JSON value of a node selection (null, "all", N or a list of names).
nlohmann::json to_json(const NodeSelection& nodes);

/// Parses a node selection from the command-line text "all", "local", "N" or "name,name,...".
/// Throws FieldError("nodes") for an empty text, 0 or an invalid node name.
NodeSelection parse_node_selection(std::string_view text);

/// The spec as a JSON object (every field, defaults included); the inverse of job_spec_from_json.
nlohmann::json to_json(const JobSpec& spec);

/// Parses and validates a JSON job spec. Absent fields take their defaults; `datasets` (or, for a
/// stream job, `stream`) and one of `poni_text`/`poni_path` (optional for a stream job) are
/// required. Throws FieldError naming the field (prefixed by
/// `prefix`, e.g. "spec.") for a wrong type, an invalid value, an unknown field, a relative path,
/// a PONI text that does not parse, or settings that fail IntegrationSettings::validate().
JobSpec job_spec_from_json(const nlohmann::json& json, std::string_view prefix = "");

}  // namespace azflow::daemon
