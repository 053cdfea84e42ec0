#pragma once
// The raw spool: every image of a detector stream series written with its compressed bytes
// unchanged, by HDF5 direct chunk writes (H5Dwrite_chunk), into the layout a DECTRIS EIGER file
// writer makes, so that azflow's file source, h5py and pyFAI read it as a detector file:
//
//   <folder>/<prefix>_master.h5
//     /entry                                NXentry
//       data                                NXdata: data_000001, data_000002, ... external links
//                                           to <prefix>_data_NNNNNN.h5:/entry/data/data
//       instrument/beam/incident_wavelength [angstrom] (when the start has it)
//       instrument/detector                 NXdetector: beam_center_x, beam_center_y [pixel],
//                                           detector_distance, x_pixel_size, y_pixel_size [m],
//                                           count_time, frame_time [s], saturation_value,
//                                           description (each when the start has it)
//         detectorSpecific                  nimages (number_of_images), ntrigger (1),
//                                           x_pixels_in_detector, y_pixels_in_detector,
//                                           photon_energy [eV], pixel_mask (uint32 rows x cols,
//                                           deflate: the channel's, when the start has one)
//       azflow_spool                        NXcollection: series_id, series_unique_id, channel,
//                                           images_per_file, complete (0 until close(), then 1),
//                                           images_spooled and missing_image_ids (uint64, the ids
//                                           of 0..nimages-1 never appended; written by close())
//   <folder>/<prefix>_data_NNNNNN.h5        /entry/data/data (n, rows, cols) of the start's dtype,
//                                           chunks (1, rows, cols), @image_nr_low/@image_nr_high
//                                           (1-based ids, as DECTRIS); n = images_per_file (the
//                                           last file: the rest). File k holds image ids
//                                           [(k-1)*n, k*n).
//
// The data files declare the first appended image's codec: bitshuffle-LZ4 as HDF5 filter 32008
// with cd_values {0, 3, element size, 0 (block size: default), 2 (LZ4)} (the bitshuffle plugin's
// layout: github.com/kiyo-masui/bitshuffle, bshuf_h5filter.c), LZ4 as filter 32004 (the framing
// of github.com/nexusformat/HDF5-External-Filter-Plugins), both optional filters; raw images as
// an unfiltered chunked dataset. A raw image in a compressed spool is stored with filter mask 1
// (filter skipped), which readers honour. A missing image leaves its chunk unwritten (reads as
// the fill value 0 through HDF5's filter path; azflow's file source fails that frame as "never
// written").
//
// Every file is created with openat(O_CREAT | O_EXCL | O_NOFOLLOW) in the folder held open by
// azflow::reduce::OutputDir (stages/reduce/output_dir.hpp): an existing spool is never
// overwritten. Data files are created when their first image arrives (close() creates the rest,
// empty). Not thread-safe, and HDF5 is a serial build: callers serialise every HDF5 call of the
// process.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "stages/source/stream2.hpp"

namespace azflow::reduce {
class OutputDir;
}

namespace azflow::source {

/// How a RawSpool names and writes its files.
struct RawSpoolOptions {
  /// File name prefix: <prefix>_master.h5, <prefix>_data_000001.h5, ...; "" = "series_<series_id>".
  std::string prefix;
  /// Images per data file (DECTRIS' nimages_per_file), >= 1.
  std::size_t images_per_file = 1000;
  /// Each append() is in the operating system's hands before it returns (HDF5 flush of the chunk
  /// and the chunk index): it survives this process being killed, not a power loss.
  bool flush_each = false;
  /// Each append() is on disk (HDF5 flush + fsync, and the folder fsynced for a new file) before
  /// it returns: it survives a power loss too. Without either, flush() does the same on request
  /// (for one fsync per batch of images).
  bool fsync = false;
  /// Channel whose pixel mask is stored ("" = the first one the start message has).
  std::string channel;
};

/// One series' raw spool (see the file comment for the layout). Move-only.
class RawSpool {
 public:
  /// What append() did with an image.
  enum class Appended {
    kWritten,    ///< its chunk is in the spool (durable per options.flush_each / fsync)
    kDuplicate,  ///< that image id was spooled already: the first one is kept, nothing written
  };

  /// Creates `folder` (and its parents) if absent and writes <prefix>_master.h5 from `start`,
  /// which must declare image_size_x/y, image_dtype and a nonzero number_of_images. Throws
  /// azflow::Error: kInput for a start message without them; kConfig for a bad option or when a
  /// file of the spool (master or data file name) already exists in `folder`; kIo naming the
  /// folder or file when it cannot be created or written.
  RawSpool(const std::filesystem::path& folder, const stream2::Start& start,
           RawSpoolOptions options = {});
  /// The same in a folder already held open (stages/reduce/output_dir.hpp; e.g. the daemon's,
  /// opened with OutputDir::open_checked so that no symbolic link is followed). Throws as above.
  RawSpool(std::shared_ptr<const reduce::OutputDir> folder, const stream2::Start& start,
           RawSpoolOptions options = {});
  /// Reopens the spool of `start`'s series that an earlier RawSpool (of this or a killed process)
  /// wrote in `folder` with the same options, to go on appending where it stopped: the ids its
  /// data files hold (spooled_ids()) count as spooled, its codec is the one its data files
  /// declare. A spool whose close() ran (complete() true) only reads. Throws azflow::Error:
  /// kConfig when `folder` holds no such master, or its series, image size or images per file
  /// are not `start`'s and `options`'; kIo naming the file when a file cannot be opened or its
  /// chunk index read (a data file left unreadable by a writer killed without flush_each).
  static RawSpool reopen(std::shared_ptr<const reduce::OutputDir> folder,
                         const stream2::Start& start, RawSpoolOptions options = {});
  RawSpool(RawSpool&&) noexcept;
  RawSpool& operator=(RawSpool&&) noexcept;
  RawSpool(const RawSpool&) = delete;
  RawSpool& operator=(const RawSpool&) = delete;
  /// Closes the files without close()'s record: the spool then reads as an unfinished one
  /// (complete = 0; spooled_ids() still lists what it holds).
  ~RawSpool();

  /// Writes image `image_id`'s stored bytes unchanged as its chunk (direct chunk write), in the
  /// data file that holds that id (created on its first image). Throws azflow::Error: kInput
  /// naming the image when the id is >= number_of_images, the array's shape or dtype differs
  /// from the start message's, or its codec cannot be stored in this spool (a compressed image
  /// whose codec is not the spool's, fixed by its first image; a bitshuffle-LZ4 element size
  /// that is not the dtype's; stream v1's bare LZ4 blocks, `lz4<`, which no HDF5 filter reads); kIo
  /// naming the file when HDF5 or fsync fails; kInternal after close().
  Appended append(std::uint64_t image_id, const stream2::Array& image);

  /// Makes everything appended so far durable: HDF5 flush and fsync of the open data file and
  /// the folder. Throws azflow::Error (kIo) naming the file.
  void flush();

  /// Finishes the spool: creates the data files no image reached (so every link resolves),
  /// records images_spooled, missing_image_ids and complete = 1 in the master, and flushes and
  /// fsyncs everything. Throws azflow::Error (kIo) naming the file. Further calls do nothing.
  void close();

  /// One spooled image's stored bytes, as read_image() gives them.
  struct StoredImage {
    std::size_t bytes = 0;            ///< the chunk's size
    decompress::CodecParams codec{};  ///< how they are encoded (kNone: raw little-endian)
  };
  /// Reads image `image_id`'s stored bytes (direct chunk read, unchanged) into `out`. Throws
  /// azflow::Error: kInput naming the image when it is not spooled or `out` is too small for
  /// its chunk; kIo naming the file when HDF5 fails; kInternal after close().
  StoredImage read_image(std::uint64_t image_id, std::span<std::byte> out);

  /// Whether close() ran, in this process or (for a reopened spool) in the one that wrote it.
  [[nodiscard]] bool complete() const noexcept;

  /// The master file's path (<folder>/<prefix>_master.h5).
  [[nodiscard]] const std::filesystem::path& master_path() const noexcept;
  /// How many images append() has written (kWritten).
  [[nodiscard]] std::size_t images_spooled() const noexcept;
  /// Ids of 0..number_of_images-1 not appended (yet), ascending.
  [[nodiscard]] std::vector<std::uint64_t> missing_ids() const;

  /// The image ids whose chunks a spool's data files hold, ascending, read from the files
  /// themselves (chunk index of each linked data file; @image_nr_low gives its first id): what
  /// survived a crash, whether or not close() ran. A linked data file that does not exist holds
  /// none. Throws azflow::Error: kIo when `master` or an existing data file cannot be opened or
  /// its chunk index read, kInput when a data file's dataset is not (n, rows, cols) with chunks
  /// of one image, naming the file.
  [[nodiscard]] static std::vector<std::uint64_t> spooled_ids(const std::filesystem::path& master);

  /// The master file name a spool of series `series_id` has with the default prefix
  /// (series_<series_id>_master.h5).
  [[nodiscard]] static std::string default_master_name(std::uint64_t series_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RawSpool() = default;  // reopen()
};

}  // namespace azflow::source
