#pragma once
// Integration plans on disk: the plan key (a canonical text of every input a plan is built from,
// and its SHA-256) and the `.plan` file format that stores a built Plan for reuse by other
// processes and later runs (docs/architecture.md, "The plan cache").
//
// File layout, format version kPlanFormatVersion, native byte order (little-endian on every
// platform azflow builds for; a file from another byte order fails the magic check):
//   bytes 0..63   header: magic "AZFPLAN\n" (8), u32 format version, u32 header bytes (64),
//                 u64 key bytes, u64 payload bytes, u64 file bytes, 24 bytes reserved (zero)
//   64..          the canonical key text (key bytes), then zero padding to a multiple of 8
//   ..            payload (payload bytes): settings, shape, then every array of the Plan as
//                 u64 element count + elements, each padded to a multiple of 8
//   last 32 bytes SHA-256 of everything before it (header, key, padding, payload)
// A reader checks magic, version, every size against the file's, the checksum and the key before
// it trusts a byte of the payload, then checks each array's size against the plan's shape.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"

namespace azflow::integrate {

/// Version of both the key text and the file layout; a change to either, or to what Plan::build
/// computes, bumps it so that older files are rebuilt instead of reused.
inline constexpr std::uint32_t kPlanFormatVersion = 2;

/// The canonical key of the plan Plan::build(Geometry(poni), settings, corrections) returns: one
/// "name=value" line per input (format version; the PONI's distance, PONI point, rotations,
/// wavelength; the detector's name, pixel sizes, shape and module layout; every field of
/// `settings`; the mask, dark and flat as element count + SHA-256 of their bytes, or "none").
/// Doubles are written exactly (C99 hexadecimal floating point, "%a"). Two inputs give the same
/// text exactly when they give the same plan. `poni` is the geometry after fit_to_frames.
std::string plan_key_text(const Poni& poni, const IntegrationSettings& settings,
                          const Corrections& corrections);

/// SHA-256 of `key_text` as 64 lower-case hexadecimal digits: the file name of its plan.
std::string plan_key_hash(std::string_view key_text);

/// SHA-256 of `bytes` as 64 lower-case hexadecimal digits.
std::string sha256_hex(const void* bytes, std::size_t size);

/// Writes `plan` with its key to `path` atomically: into "<path>.tmp.<pid>" first, fsynced, then
/// renamed over `path` and the folder fsynced, so that a reader sees the old file, no file or the
/// whole new one. Throws azflow::Error (kIo) naming the file if a step fails (the temporary file
/// is removed).
void write_plan_file(const std::filesystem::path& path, const Plan& plan,
                     std::string_view key_text);

/// What read_plan_file found.
struct PlanFileRead {
  std::shared_ptr<const Plan> plan;  ///< the stored plan; null if absent or rejected
  /// Why the file was rejected ("" if it was absent or accepted): e.g. "bad magic", "format
  /// version 7, expected 1", "truncated: 1000 bytes, header says 2048", "checksum mismatch",
  /// "stored for another key".
  std::string problem;
};

/// Reads the plan stored in `path` (mapped read-only with mmap) if the file exists and holds
/// `key_text`'s plan. The returned Plan's matrices and per-pixel arrays are views into the mapping
/// (Plan::mapped()), which the Plan keeps: every process that reads the file shares its pages
/// through the page cache; the axes, row pointers and static sums are copied. Never throws for a
/// missing, corrupt, truncated, wrong-version or foreign file: it returns a null plan with the
/// problem. Throws std::bad_alloc only.
PlanFileRead read_plan_file(const std::filesystem::path& path, std::string_view key_text);

}  // namespace azflow::integrate
