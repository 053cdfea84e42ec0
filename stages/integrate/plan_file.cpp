#include "stages/integrate/plan_file.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <sstream>
#include <type_traits>
#include <vector>

#include "base/error.hpp"

namespace azflow::integrate {

// Adding a field to these types changes what a plan depends on: update plan_key_text, the codec
// below (PlanCodec) and kPlanFormatVersion, then these sizes.
static_assert(sizeof(IntegrationSettings) == 176, "update plan_key_text / PlanCodec");
static_assert(sizeof(DetectorSpec) == 112, "update plan_key_text");
static_assert(sizeof(Poni) == 184, "update plan_key_text");

namespace {

constexpr char kMagic[8] = {'A', 'Z', 'F', 'P', 'L', 'A', 'N', '\n'};
constexpr std::size_t kHeaderBytes = 64;
constexpr std::size_t kDigestBytes = 32;

/// The fixed header at the start of a .plan file.
struct Header {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint64_t key_bytes;
  std::uint64_t payload_bytes;
  std::uint64_t file_bytes;
  std::uint8_t reserved[24];
};
static_assert(sizeof(Header) == kHeaderBytes);

constexpr std::size_t pad8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

std::string hex(const unsigned char* digest, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[digest[i] >> 4];
    out[2 * i + 1] = kDigits[digest[i] & 15];
  }
  return out;
}

/// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
      throw Error(ErrorCategory::kInternal, "SHA-256: cannot initialise OpenSSL's digest");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size) {
    if (size > 0 && EVP_DigestUpdate(ctx_, data, size) != 1)
      throw Error(ErrorCategory::kInternal, "SHA-256: digest update failed");
  }
  std::array<unsigned char, kDigestBytes> finish() {
    std::array<unsigned char, kDigestBytes> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx_, out.data(), &n) != 1 || n != kDigestBytes)
      throw Error(ErrorCategory::kInternal, "SHA-256: digest final failed");
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::string exact(const std::optional<double>& v) { return v ? exact(*v) : "none"; }

std::string exact(const std::optional<std::pair<double, double>>& r) {
  return r ? exact(r->first) + "," + exact(r->second) : "none";
}

template <class T>
std::string content(const std::vector<T>& v) {
  if (v.empty()) return "none";
  return std::to_string(v.size()) + ":" + sha256_hex(v.data(), v.size() * sizeof(T));
}

}  // namespace

std::string sha256_hex(const void* bytes, std::size_t size) {
  Sha256 sha;
  sha.update(bytes, size);
  const auto digest = sha.finish();
  return hex(digest.data(), digest.size());
}

std::string plan_key_hash(std::string_view key_text) {
  return sha256_hex(key_text.data(), key_text.size());
}

std::string plan_key_text(const Poni& poni, const IntegrationSettings& s, const Corrections& c) {
  const DetectorSpec& d = poni.detector;
  std::ostringstream k;
  k << "azflow plan key v" << kPlanFormatVersion << "\n"
    << "detector.name=" << d.name << "\n"
    << "detector.pixel1_m=" << exact(d.pixel1_m) << "\ndetector.pixel2_m=" << exact(d.pixel2_m)
    << "\ndetector.shape=" << d.rows << "x" << d.cols << "\ndetector.modules=" << d.module_rows
    << "x" << d.module_cols << " gaps " << d.gap_rows << "x" << d.gap_cols << " mid "
    << d.mid_module_cols << " circular " << d.circular << "\n"
    << "poni.dist_m=" << exact(poni.dist_m) << "\nponi.poni1_m=" << exact(poni.poni1_m)
    << "\nponi.poni2_m=" << exact(poni.poni2_m) << "\nponi.rot1_rad=" << exact(poni.rot1_rad)
    << "\nponi.rot2_rad=" << exact(poni.rot2_rad) << "\nponi.rot3_rad=" << exact(poni.rot3_rad)
    << "\nponi.wavelength_m=" << exact(poni.wavelength_m) << "\n"
    << "settings.unit=" << unit_name(s.unit) << "\nsettings.npt_rad=" << s.npt_rad
    << "\nsettings.npt_azim=" << s.npt_azim << "\nsettings.radial_range=" << exact(s.radial_range)
    << "\nsettings.azimuth_range_deg=" << exact(s.azimuth_range_deg)
    << "\nsettings.azimuthal_unit=" << azimuthal_unit_name(s.azimuthal_unit)
    << "\nsettings.split=" << static_cast<int>(s.split) << " (" << split_name(s.split) << ")"
    << "\nsettings.correct_solid_angle=" << s.correct_solid_angle
    << "\nsettings.polarization_factor=" << exact(s.polarization_factor)
    << "\nsettings.dummy=" << exact(s.dummy) << "\nsettings.delta_dummy=" << exact(s.delta_dummy)
    << "\nsettings.normalization_factor=" << exact(s.normalization_factor)
    << "\nsettings.error_model=" << error_model_name(s.error_model) << "\nsettings.sigma_clip="
    << (s.sigma_clip ? exact(s.sigma_clip->thres) + "," + std::to_string(s.sigma_clip->max_iter)
                     : std::string("none"))
    << "\n"
    << "corrections.mask=" << content(c.mask) << "\ncorrections.dark=" << content(c.dark)
    << "\ncorrections.flat=" << content(c.flat) << "\n";
  return k.str();
}

/// Serialises a Plan's members (friend of Plan).
struct PlanCodec {
  /// Appends trivially copyable values and arrays, 8-byte aligned.
  class Writer {
   public:
    template <class T>
    void put(T v) {
      static_assert(std::is_trivially_copyable_v<T>);
      append(&v, sizeof v);
    }
    template <class T>
    void put(std::span<const T> v) {
      put<std::uint64_t>(v.size());
      append(v.data(), v.size() * sizeof(T));
    }
    template <class T>
    void put(const std::vector<T>& v) {
      put(std::span<const T>(v));
    }
    void put(const std::optional<double>& v) {
      put<std::uint64_t>(v ? 1 : 0);
      put<double>(v.value_or(0.0));
    }
    void put(const std::optional<std::pair<double, double>>& r) {
      put<std::uint64_t>(r ? 1 : 0);
      put<double>(r ? r->first : 0.0);
      put<double>(r ? r->second : 0.0);
    }
    std::vector<std::byte> bytes;

   private:
    void append(const void* p, std::size_t n) {
      const auto* b = static_cast<const std::byte*>(p);
      bytes.insert(bytes.end(), b, b + n);
      bytes.resize(pad8(bytes.size()));
    }
  };

  /// Reads what Writer wrote; every read checked against the end (throws Error kInput).
  class Reader {
   public:
    explicit Reader(std::span<const std::byte> data) : data_(data) {}
    template <class T>
    T get() {
      static_assert(std::is_trivially_copyable_v<T>);
      T v;
      std::memcpy(&v, take(sizeof v), sizeof v);
      return v;
    }
    template <class T>
    void get(std::vector<T>& v) {
      const auto n = get<std::uint64_t>();
      if (n > (data_.size() - pos_) / sizeof(T)) fail("array longer than the payload");
      v.resize(n);
      if (n > 0) std::memcpy(v.data(), take(n * sizeof(T)), n * sizeof(T));
    }
    /// A view of the next array, in place (the payload outlives it: the plan keeps the mapping).
    template <class T>
    void view(std::span<const T>& v) {
      const auto n = get<std::uint64_t>();
      if (n > (data_.size() - pos_) / sizeof(T)) fail("array longer than the payload");
      const std::byte* p = n > 0 ? take(n * sizeof(T)) : nullptr;
      if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) fail("misaligned array");
      v = std::span<const T>(reinterpret_cast<const T*>(p), n);
    }
    void get(std::optional<double>& v) {
      const bool has = get<std::uint64_t>() != 0;
      const auto x = get<double>();
      v = has ? std::optional<double>(x) : std::nullopt;
    }
    void get(std::optional<std::pair<double, double>>& r) {
      const bool has = get<std::uint64_t>() != 0;
      const auto lo = get<double>();
      const auto hi = get<double>();
      r = has ? std::optional<std::pair<double, double>>({lo, hi}) : std::nullopt;
    }
    [[nodiscard]] bool at_end() const { return pos_ == data_.size(); }
    [[noreturn]] static void fail(const std::string& why) {
      throw Error(ErrorCategory::kInput, "plan payload: " + why);
    }

   private:
    const std::byte* take(std::size_t n) {
      if (n > data_.size() - pos_) fail("truncated");
      const std::byte* p = data_.data() + pos_;
      pos_ = std::min(data_.size(), pos_ + pad8(n));
      return p;
    }
    std::span<const std::byte> data_;
    std::size_t pos_ = 0;
  };

  static void put_settings(Writer& w, const IntegrationSettings& s) {
    w.put<std::uint64_t>(static_cast<std::uint64_t>(s.unit));
    w.put<std::uint64_t>(s.npt_rad);
    w.put<std::uint64_t>(s.npt_azim);
    w.put(s.radial_range);
    w.put(s.azimuth_range_deg);
    w.put<std::uint64_t>(static_cast<std::uint64_t>(s.azimuthal_unit));
    w.put<std::uint64_t>(static_cast<std::uint64_t>(s.split));
    w.put<std::uint64_t>(s.correct_solid_angle ? 1 : 0);
    w.put(s.polarization_factor);
    w.put(s.dummy);
    w.put(s.delta_dummy);
    w.put<double>(s.normalization_factor);
    w.put<std::uint64_t>(static_cast<std::uint64_t>(s.error_model));
    w.put<std::uint64_t>(s.sigma_clip ? 1 : 0);
    w.put<double>(s.sigma_clip ? s.sigma_clip->thres : 0.0);
    w.put<std::uint64_t>(s.sigma_clip ? s.sigma_clip->max_iter : 0);
  }

  static IntegrationSettings get_settings(Reader& r) {
    IntegrationSettings s;
    s.unit = static_cast<RadialUnit>(r.get<std::uint64_t>());
    s.npt_rad = r.get<std::uint64_t>();
    s.npt_azim = r.get<std::uint64_t>();
    r.get(s.radial_range);
    r.get(s.azimuth_range_deg);
    s.azimuthal_unit = static_cast<AzimuthalUnit>(r.get<std::uint64_t>());
    s.split = static_cast<PixelSplit>(r.get<std::uint64_t>());
    s.correct_solid_angle = r.get<std::uint64_t>() != 0;
    r.get(s.polarization_factor);
    r.get(s.dummy);
    r.get(s.delta_dummy);
    s.normalization_factor = r.get<double>();
    s.error_model = static_cast<ErrorModel>(r.get<std::uint64_t>());
    const bool clip = r.get<std::uint64_t>() != 0;
    const double thres = r.get<double>();
    const auto max_iter = r.get<std::uint64_t>();
    if (clip) s.sigma_clip = SigmaClip{thres, max_iter};
    return s;
  }

  /// The arrays of a plan in file order: the axes and row pointers (copied when read), the
  /// matrices and per-pixel arrays (`big`: viewed in the mapping when read), the static sums
  /// (copied).
  template <class P, class Small, class Big>
  static void each_array(P& p, Small&& small, Big&& big) {
    small(p.radial_centers_), small(p.radial_edges_), small(p.azim_centers_);
    small(p.azim_edges_), small(p.indptr_);
    big(p.indices_, p.mapped_.indices), big(p.weights_, p.mapped_.weights);
    big(p.pixel_ptr_, p.mapped_.pixel_ptr), big(p.pixel_bins_, p.mapped_.pixel_bins);
    big(p.pixel_weights_, p.mapped_.pixel_weights), big(p.pixel_bin_, p.mapped_.pixel_bin);
    big(p.normalization_, p.mapped_.normalization), big(p.dark_, p.mapped_.dark);
    big(p.invalid_, p.mapped_.invalid);
    small(p.static_sums_.entries), small(p.static_sums_.count);
    small(p.static_sums_.normalization), small(p.static_sums_.dark);
  }

  static std::vector<std::byte> encode(const Plan& plan) {
    Writer w;
    put_settings(w, plan.settings_);
    w.put<std::uint64_t>(plan.rows_);
    w.put<std::uint64_t>(plan.cols_);
    w.put<std::uint64_t>(plan.bins_);
    each_array(
        plan, [&](const auto& v) { w.put(v); },
        [&](const auto& owned, const auto& view) { w.put(plan.pick(view, owned)); });
    return std::move(w.bytes);
  }

  /// The plan in `payload`, whose large arrays stay in place: `storage` (what holds the
  /// payload's bytes) is kept by the plan.
  static std::shared_ptr<const Plan> decode(std::span<const std::byte> payload,
                                            std::shared_ptr<const void> storage) {
    Reader r(payload);
    auto plan = std::shared_ptr<Plan>(new Plan());
    plan->settings_ = get_settings(r);
    plan->rows_ = r.get<std::uint64_t>();
    plan->cols_ = r.get<std::uint64_t>();
    plan->bins_ = r.get<std::uint64_t>();
    each_array(
        *plan, [&](auto& v) { r.get(v); }, [&](auto&, auto& view) { r.view(view); });
    if (!r.at_end()) Reader::fail("bytes left after the last array");
    plan->storage_ = std::move(storage);
    check_shapes(*plan);
    return plan;
  }

  /// The arrays' sizes and indices agree with the plan's shape (what the integrators rely on).
  static void check_shapes(const Plan& p) {
    const std::size_t pixels = p.rows_ * p.cols_, bins = p.bins_;
    const std::size_t nnz = p.csr_indices().size(), entries = p.pixel_bins().size();
    auto need = [](bool ok, const char* what) {
      if (!ok) Reader::fail(std::string(what) + " does not fit the plan's shape");
    };
    need(p.settings_.npt_rad * std::max<std::size_t>(p.settings_.npt_azim, 1) == bins, "bins");
    need(p.radial_centers_.size() == p.settings_.npt_rad, "radial axis");
    need(p.indptr_.size() == bins + 1 && p.csr_weights().size() == nnz, "CSR matrix");
    need(p.pixel_ptr().size() == pixels + 1 && p.pixel_weights().size() == entries, "pixel lists");
    need(p.pixel_bin().empty() || p.pixel_bin().size() == pixels, "pixel_bin");
    need(p.normalization().size() == pixels, "normalization");
    need(p.dark().empty() || p.dark().size() == pixels, "dark");
    need(p.invalid().empty() || p.invalid().size() == pixels, "invalid");
    const auto& s = p.static_sums_;
    need(s.entries.size() == bins && s.count.size() == bins && s.normalization.size() == bins &&
             s.dark.size() == bins,
         "static sums");
    need(monotone(p.indptr_, nnz) && monotone(p.pixel_ptr(), entries), "row pointers");
    need(below(p.csr_indices(), pixels) && below(p.pixel_bins(), bins), "indices");
    for (const std::int32_t b : p.pixel_bin()) need(b >= -1 && b < std::int64_t(bins), "pixel_bin");
  }

  static bool monotone(std::span<const std::int32_t> ptr, std::size_t end) {
    if (ptr.front() != 0 || static_cast<std::size_t>(ptr.back()) != end) return false;
    for (std::size_t i = 1; i < ptr.size(); ++i)
      if (ptr[i] < ptr[i - 1]) return false;
    return true;
  }

  static bool below(std::span<const std::int32_t> v, std::size_t n) {
    for (const std::int32_t x : v)
      if (x < 0 || static_cast<std::size_t>(x) >= n) return false;
    return true;
  }
};

namespace {

[[noreturn]] void io_fail(const std::filesystem::path& path, const std::string& what) {
  throw Error(ErrorCategory::kIo,
              "plan file " + path.string() + ": " + what + ": " + std::strerror(errno));
}

void write_all(int fd, const void* data, std::size_t size, const std::filesystem::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) io_fail(path, "write");
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

/// A read-only mapping of a whole file; empty if the file does not exist.
class Mapping {
 public:
  Mapping(const std::filesystem::path& path, std::string& problem) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) problem = std::string("cannot open: ") + std::strerror(errno);
      return;
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      size_ = static_cast<std::size_t>(st.st_size);
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        problem = std::string("cannot map: ") + std::strerror(errno);
        size_ = 0;
      } else {
        data_ = static_cast<const std::byte*>(p);
      }
    } else {
      problem = "empty file";
    }
    ::close(fd);
  }
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Checks header, sizes, checksum and key; the payload's bytes, or a problem.
std::span<const std::byte> verified_payload(std::span<const std::byte> file,
                                            std::string_view key_text, std::string& problem) {
  Header h{};
  if (file.size() < kHeaderBytes + kDigestBytes) {
    problem = "truncated: " + std::to_string(file.size()) + " bytes";
    return {};
  }
  std::memcpy(&h, file.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    problem = "bad magic (not an azflow plan file)";
    return {};
  }
  if (h.version != kPlanFormatVersion) {
    problem = "format version " + std::to_string(h.version) + ", expected " +
              std::to_string(kPlanFormatVersion);
    return {};
  }
  constexpr std::uint64_t kMaxPart = std::uint64_t{1} << 56;  // no overflow in the sum below
  if (h.header_bytes != kHeaderBytes || h.key_bytes > kMaxPart || h.payload_bytes > kMaxPart ||
      h.file_bytes != kHeaderBytes + pad8(h.key_bytes) + h.payload_bytes + kDigestBytes) {
    problem = "inconsistent header sizes";
    return {};
  }
  if (h.file_bytes != file.size()) {
    problem = "truncated or extended: " + std::to_string(file.size()) + " bytes, header says " +
              std::to_string(h.file_bytes);
    return {};
  }
  Sha256 sha;
  sha.update(file.data(), file.size() - kDigestBytes);
  const auto digest = sha.finish();
  if (std::memcmp(digest.data(), file.data() + file.size() - kDigestBytes, kDigestBytes) != 0) {
    problem = "checksum mismatch (corrupt file)";
    return {};
  }
  const std::string_view stored(reinterpret_cast<const char*>(file.data() + kHeaderBytes),
                                h.key_bytes);
  if (stored != key_text) {
    problem = "stored for another key (hash collision or renamed file)";
    return {};
  }
  return file.subspan(kHeaderBytes + pad8(h.key_bytes), h.payload_bytes);
}

}  // namespace

void write_plan_file(const std::filesystem::path& path, const Plan& plan,
                     std::string_view key_text) {
  const std::vector<std::byte> payload = PlanCodec::encode(plan);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kPlanFormatVersion;
  h.header_bytes = kHeaderBytes;
  h.key_bytes = key_text.size();
  h.payload_bytes = payload.size();
  h.file_bytes = kHeaderBytes + pad8(key_text.size()) + payload.size() + kDigestBytes;
  const std::string padding(pad8(key_text.size()) - key_text.size(), '\0');
  Sha256 sha;
  sha.update(&h, sizeof h);
  sha.update(key_text.data(), key_text.size());
  sha.update(padding.data(), padding.size());
  sha.update(payload.data(), payload.size());
  const auto digest = sha.finish();

  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_fail(tmp, "create");
  try {
    write_all(fd, &h, sizeof h, tmp);
    write_all(fd, key_text.data(), key_text.size(), tmp);
    write_all(fd, padding.data(), padding.size(), tmp);
    write_all(fd, payload.data(), payload.size(), tmp);
    write_all(fd, digest.data(), digest.size(), tmp);
    if (::fsync(fd) != 0) io_fail(tmp, "fsync");
    if (::close(fd) != 0) io_fail(tmp, "close");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    io_fail(path, "rename");
  }
  const int dir = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
}

PlanFileRead read_plan_file(const std::filesystem::path& path, std::string_view key_text) {
  PlanFileRead out;
  auto map = std::make_shared<const Mapping>(path, out.problem);
  if (map->bytes().empty()) return out;
  const auto payload = verified_payload(map->bytes(), key_text, out.problem);
  if (!out.problem.empty()) return out;
  try {
    out.plan = PlanCodec::decode(payload, map);
  } catch (const Error& e) {
    out.problem = e.what();
  }
  return out;
}

}  // namespace azflow::integrate
