// Escaping of names that are not UTF-8 (daemon/json_text.hpp) and the ring budget checked at
// enqueue (daemon/ring_budget.hpp).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "daemon/json_text.hpp"
#include "daemon/ring_budget.hpp"

namespace azflow::daemon {
namespace {

TEST(JsonText, ValidUtf8PassesUnchanged) {
  for (const std::string s : {"", "plain.h5", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                              "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(escape_bytes(s), s);
  }
}

TEST(JsonText, InvalidBytesBecomeHexEscapes) {
  EXPECT_EQ(escape_bytes("bad\xff.h5"), "bad\\xff.h5");
  EXPECT_EQ(escape_bytes("\xc0\x80"), "\\xc0\\x80");                    // overlong NUL
  EXPECT_EQ(escape_bytes("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate U+D800
  EXPECT_EQ(escape_bytes("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_bytes("a\xe2\x82"), "a\\xe2\\x82");                  // truncated
  EXPECT_EQ(escape_bytes("\x80z\xc3\xa9"), "\\x80z\xc3\xa9");           // lone continuation
}

TEST(JsonText, DumpEscapedNeverThrows) {
  const nlohmann::json j = {{"file", "bad\xff.h5"}, {"list", {"ok", "x\xfe"}}, {"k\xff", 1}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  const nlohmann::json back = nlohmann::json::parse(dump_escaped(j));
  EXPECT_EQ(back["file"], "bad\\xff.h5");
  EXPECT_EQ(back["list"][1], "x\\xfe");
  EXPECT_EQ(back["k\\xff"], 1);
  const nlohmann::json plain = {{"a", 1}};
  EXPECT_EQ(dump_escaped(plain), plain.dump());
}

TEST(RingBudget, SlotsAndTotal) {
  RingsConfig rings;  // 16, 16, 64 slots, auto sizes
  const RingSlotBytes b = ring_slot_bytes(rings, 3u << 20, 1000);
  EXPECT_EQ(b.compressed, 4u << 20);  // 3 MiB + 4096 rounded up to whole MiB
  EXPECT_EQ(b.frames, 3u << 20);
  EXPECT_EQ(b.results, 1u << 20);  // 32000 B: at least 1 MiB
  EXPECT_EQ(ring_total_bytes(rings, b), (16 * 4 + 16 * 3 + 64 * 1 + 3) * (std::size_t{1} << 20));
}

TEST(RingBudget, RefusalNamesTheField) {
  RingsConfig rings;
  JobSpec spec;
  spec.settings.npt_rad = 268435456;
  try {
    check_ring_budget(rings, spec, 1u << 20, std::size_t{1} << 30);
    FAIL() << "not refused";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "settings.npt_rad");
    EXPECT_NE(e.message().find("/dev/shm can give 1024 MiB"), std::string::npos) << e.what();
  }
  spec.settings.npt_rad = 1000;
  EXPECT_NO_THROW(check_ring_budget(rings, spec, 1u << 20, std::size_t{1} << 40));
  rings.max_total_mib = 100;  // 16 + 16 x 2 MiB + 64 + 3 > 100: the frames make it big
  try {
    check_ring_budget(rings, spec, (1u << 20) + 1, std::size_t{1} << 40);
    FAIL() << "not refused";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "datasets");
    EXPECT_NE(e.message().find("rings.max_total_mib is 100 MiB"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace azflow::daemon
