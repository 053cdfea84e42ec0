#pragma once
// The HDF5 source: finds a dataset's frames and reads them, decoded, one at a time.
//
// Layouts found by Dataset::open:
//   - Eiger/NeXus master file: /entry/data/data_000001, data_000002, ... (external links,
//     resolved relative to the master file's folder; hard or soft links also work), frames
//     numbered across them in name order;
//   - a plain HDF5 file: one dataset, OpenOptions::dataset_path or /entry/data/data;
// and by Dataset::open_files: the same dataset path in each of a list of files.
// Datasets are (frames, rows, cols) or a single (rows, cols) frame, little-endian uint8, uint16,
// uint32, int16, int32, int64, float32 or float64.
//
// Reading: a dataset chunked one frame per chunk whose one filter is bitshuffle+LZ4 (32008),
// bitshuffle alone (32008, compression 0), LZ4 (32004), or none is read by direct chunk read
// (H5Dread_chunk, no HDF5 decompression) and decoded by azflow::decompress. Anything else goes
// through HDF5's filter pipeline (H5Dread of one frame's hyperslab), which gives the same bytes.
//
// Zero-copy chunk path (OpenOptions::map_files, on by default): when HDF5 can report chunk
// addresses (H5Dget_chunk_info_by_coord, HDF5 >= 1.10.5) and the data file is open with the
// default POSIX driver, each directly readable chunk's address, size and filter mask are looked up
// once (cached per data file), checked against the file's size, and decoded straight from a
// read-only mapping of the file (mmap PROT_READ, MAP_PRIVATE) instead of being copied out with
// H5Dread_chunk. Otherwise the H5Dread_chunk copy path is used, with the same results.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "stages/decompress/codec.hpp"

namespace azflow::source {

/// A detector's own description of its geometry, from the master file (Eiger NXmx layout),
/// converted to SI units; each field is absent when the file does not hold it (or holds it in
/// units azflow does not know). Paths: /entry/instrument/detector/{beam_center_x, beam_center_y
/// [pixel], detector_distance [m], x_pixel_size, y_pixel_size [m], description},
/// /entry/instrument/beam/incident_wavelength or /entry/instrument/monochromator/wavelength
/// [units attribute; angstrom when it has none], .../detectorSpecific/{nimages, ntrigger}.
struct DetectorMetadata {
  std::optional<double> beam_center_x_px, beam_center_y_px;  ///< along cols (x) and rows (y)
  std::optional<double> detector_distance_m;
  std::optional<double> incident_wavelength_m;
  std::optional<double> x_pixel_size_m, y_pixel_size_m;
  std::optional<std::string> description;
  std::optional<std::size_t> nimages, ntrigger;
};

/// How to open a dataset.
struct OpenOptions {
  /// Dataset path inside the file(s); "" = auto: Eiger master data_NNNNNN links, else
  /// /entry/data/data.
  std::string dataset_path;
  /// Follow a series still being written: wait for linked data files that do not exist yet and
  /// for frames not yet written, up to nimages x ntrigger frames or idle_timeout_s without
  /// progress.
  bool follow = false;
  /// Follow mode: give up after this many seconds without a new frame.
  double idle_timeout_s = 30;
  /// Never use direct chunk reads; always HDF5's H5Dread (for comparison and debugging).
  bool force_hdf5_filter_path = false;
  /// Direct chunk reads take the chunk straight from a read-only memory mapping of the data file
  /// (no copy; see Dataset::chunk_view). false = copy each chunk out with H5Dread_chunk first
  /// (the path taken anyway when the mapping is unavailable; for comparison and debugging).
  bool map_files = true;
};

/// What a dataset holds.
struct DatasetInfo {
  std::filesystem::path path;  ///< the file as given (master file, or first of a list)
  std::string dataset;         ///< description: dataset path, or the master's link group
  std::size_t frames = 0;      ///< frames available now (grows in follow mode)
  std::size_t rows = 0, cols = 0;
  DType dtype = DType::kUint32;
  /// rows*cols, row-major, nonzero = bad pixel (Eiger semantics), from
  /// /entry/instrument/detector/detectorSpecific/pixel_mask when present.
  std::optional<std::vector<std::uint32_t>> pixel_mask;
  DetectorMetadata detector;

  /// Bytes of one decoded frame: rows * cols * dtype_size(dtype).
  [[nodiscard]] std::size_t frame_bytes() const { return rows * cols * dtype_size(dtype); }
};

/// One data file of a series and the frames it holds (Dataset::files()).
struct SeriesFile {
  std::filesystem::path file;  ///< the HDF5 file that stores the frames
  std::string dataset;         ///< the dataset's path in `file`
  std::size_t first = 0;       ///< global index of its first frame
  std::size_t frames = 0;      ///< frames it holds (found so far, in follow mode)
};

/// One frame's stored chunk as read by Dataset::read_chunk.
struct RawChunk {
  std::size_t bytes = 0;          ///< bytes written to the caller's buffer
  decompress::CodecParams codec;  ///< how to decode them (filter mask already applied)
};

/// One frame's stored chunk seen in place, inside the read-only mapping of its data file
/// (Dataset::chunk_view). The bytes are untrusted: decode them with azflow::decompress, which
/// checks every size.
struct ChunkView {
  std::span<const std::byte> bytes;  ///< the stored chunk, exactly its stored size
  decompress::CodecParams codec;     ///< how to decode it (filter mask already applied)
};

/// An open series of frames. Move-only; not thread-safe (HDF5 is a serial build here): use one
/// per thread. Errors are azflow::Error naming the file, dataset and frame: kIo for files that
/// cannot be opened or read, kInput for malformed contents (wrong dtype or shape, corrupt chunk).
class Dataset {
 public:
  /// Opens a master file or plain HDF5 file (see the file comment for the layouts). Throws
  /// azflow::Error: kIo if the file or a linked data file cannot be opened (follow mode waits
  /// up to idle_timeout_s for the first one), kInput if there is no data or its type or shape
  /// is unsupported or inconsistent between files.
  static Dataset open(const std::filesystem::path& path, const OpenOptions& options = {});

  /// Opens the same dataset (options.dataset_path, default /entry/data/data) in each file, in
  /// order; frames are numbered across them. Metadata comes from the first file. Throws as open.
  static Dataset open_files(const std::vector<std::filesystem::path>& files,
                            const OpenOptions& options = {});

  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;
  ~Dataset();

  /// Shape, type, mask and metadata. info().frames is the number of frames available now.
  [[nodiscard]] const DatasetInfo& info() const;
  /// The files that hold the frames, in frame order (present ones; in follow mode, so far).
  [[nodiscard]] std::vector<SeriesFile> files() const;

  /// Decodes frame `index` (0-based over the whole series) into `out` (exactly
  /// info().frame_bytes()). Direct chunk read + azflow decoder when the layout allows, else the
  /// HDF5 filter pipeline. In follow mode waits (up to the idle timeout) for a frame not yet
  /// written. Throws azflow::Error (kInput/kIo) naming file, dataset and frame; `out` is then
  /// not a valid frame.
  void read_frame(std::size_t index, std::span<std::byte> out);

  /// How frame `index`'s chunk is encoded, when it can be read with read_chunk; codec kOther when
  /// the frame must go through read_frame's HDF5 path. Throws as read_frame.
  [[nodiscard]] decompress::CodecParams frame_codec(std::size_t index);

  /// Stored size in bytes of frame `index`'s chunk (0 if it was never written). Throws as
  /// read_frame, and kInternal if frame_codec(index) is kOther.
  [[nodiscard]] std::size_t chunk_bytes(std::size_t index);

  /// Reads frame `index`'s stored chunk without decoding it into `out` (at least chunk_bytes).
  /// Returns the bytes written and their codec (kNone when the chunk was stored unfiltered).
  /// Copies from the file's mapping when chunk_view would give the chunk, else H5Dread_chunk.
  /// Throws as read_frame, and kInternal if `out` is too small or the frame has no direct path.
  RawChunk read_chunk(std::size_t index, std::span<std::byte> out);

  /// Frame `index`'s stored chunk in place, without copying: a view into a read-only mapping of
  /// its data file. nullopt when the frame has no direct path (frame_codec kOther), map_files is
  /// off, or the file cannot be mapped (HDF5 < 1.10.5, a driver other than POSIX); use read_chunk
  /// or read_frame then. In follow mode waits for a chunk not yet written, as read_frame.
  ///
  /// Lifetime: the view is valid until the next non-const call on this Dataset (any of them may
  /// remap a grown file or reopen it in follow mode) or its destruction.
  ///
  /// Safety: the chunk index is untrusted; a chunk it places outside the file throws
  /// azflow::Error kInput naming file, dataset and frame. The file's size is re-read (fstat) on
  /// every call and a chunk no longer inside it throws kIo ("shrank"). Residual risk: if another
  /// process truncates the file after that check while the view is being read, the read raises
  /// SIGBUS (the same holds inside read_frame, between its check and the end of decoding).
  /// Writers that replace files by rename, or only append, are safe.
  [[nodiscard]] std::optional<ChunkView> chunk_view(std::size_t index);

  /// Follow mode: frames that the series should reach (nimages x ntrigger), if the master file
  /// says.
  [[nodiscard]] std::optional<std::size_t> expected_frames() const;

  /// Looks once for new data files and frames (does not wait); returns info().frames.
  std::size_t refresh();

  /// Waits until at least `count` frames are available, or idle_timeout_s passes without a new
  /// frame; returns info().frames (which may be fewer than `count`).
  std::size_t wait_for_frames(std::size_t count);

  /// Follow mode: waits for the whole series (expected_frames(), or until the idle timeout if
  /// unknown) and returns how many frames it found.
  std::size_t follow();

 private:
  struct Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace azflow::source
