#include "codec/wire_format.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "codec/compression.h"

namespace marmot {
namespace {

std::shared_ptr<const std::vector<std::string>> Cols(std::vector<std::string> c) {
  return std::make_shared<const std::vector<std::string>>(std::move(c));
}

std::string Hex(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

ChangeMessage Sample() {
  ChangeMessage m;
  m.node_id = 7;
  m.first_seq = 10;
  m.last_seq = 12;
  auto books = Cols({"id", "title"});
  auto keys = Cols({"id"});
  m.changes.push_back({"books", RowChange::Op::kUpsert, books, {Value::Integer(1), Value::Text("Dune")}, 0});
  m.changes.push_back({"books", RowChange::Op::kUpsert, books, {Value::Integer(2), Value::Null()}, 0});
  m.changes.push_back({"books", RowChange::Op::kDelete, keys, {Value::Integer(3)}, 0});
  return m;
}

TEST(WireFormatTest, EveryValueTypeRoundTripsExactly) {
  std::vector<Value> values = {
      Value::Null(),
      Value::Integer(0),
      Value::Integer(-1),
      Value::Integer(std::numeric_limits<int64_t>::min()),
      Value::Integer(std::numeric_limits<int64_t>::max()),
      Value::Real(-0.0),
      Value::Real(std::numeric_limits<double>::infinity()),
      Value::Real(-std::numeric_limits<double>::infinity()),
      Value::Real(std::numeric_limits<double>::denorm_min()),
      Value::Real(0.1),
      Value::Text(std::string("nul\0inside", 10)),
      Value::Text("unicode \xF0\x9F\xA6\xAB \xC3\xA9"),
      Value::Text("bad utf8 \xC3\x28 \xFF"),
      Value::Text(""),
      Value::Blob(""),
      Value::Blob(std::string(5 << 20, '\x5a')),
  };
  std::vector<std::string> names;
  for (size_t i = 0; i < values.size(); ++i) names.push_back("c" + std::to_string(i));
  ChangeMessage m;
  m.node_id = std::numeric_limits<uint64_t>::max();
  m.changes.push_back({"t", RowChange::Op::kUpsert, Cols(names), values, 0});
  Result<ChangeMessage> back = DecodeChangeMessage(EncodeChangeMessage(m));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->node_id, m.node_id);
  ASSERT_EQ(back->changes.size(), 1u);
  EXPECT_EQ(*back->changes[0].columns, names);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(back->changes[0].values[i], values[i])
        << "value #" << i << " " << values[i].ToDebugString().substr(0, 40);
  }
}

TEST(WireFormatTest, LayoutIsExactlyAsDocumented) {
  // {"v":1,"node":7,"seq":[10,12],"h":[["books",["id","title"]],["books",["id"]]],
  //  "c":[[0,1,[1,"Dune"]],[0,1,[2,null]],[1,2,[3]]]}
  std::string expected =
      "a5"  // map(5)
      "6176"
      "01"  // "v": 1
      "646e6f6465"
      "07"  // "node": 7
      "63736571"
      "82"
      "0a"
      "0c"  // "seq": [10, 12]
      "6168"
      "82"  // "h": array(2)
      "82"
      "65626f6f6b73"
      "82"
      "626964"
      "657469746c65"  // ["books", ["id", "title"]]
      "82"
      "65626f6f6b73"
      "81"
      "626964"  // ["books", ["id"]]
      "6163"
      "83"  // "c": array(3)
      "83"
      "00"
      "01"
      "82"
      "01"
      "6444756e65"  // [0, 1, [1, "Dune"]]
      "83"
      "00"
      "01"
      "82"
      "02"
      "f6"  // [0, 1, [2, null]]
      "83"
      "01"
      "02"
      "81"
      "03";  // [1, 2, [3]]
  EXPECT_EQ(Hex(EncodeChangeMessage(Sample())), expected);
  Result<ChangeMessage> decoded = DecodeChangeMessage(Unhex(expected));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->first_seq, 10u);
  EXPECT_EQ(decoded->last_seq, 12u);
  ASSERT_EQ(decoded->changes.size(), 3u);
  EXPECT_EQ(decoded->changes[2].op, RowChange::Op::kDelete);
  // Changes sharing a header share one column list.
  EXPECT_EQ(decoded->changes[0].columns.get(), decoded->changes[1].columns.get());
}

TEST(WireFormatTest, OtherEncodersFloatsAndUnknownKeysAreAccepted) {
  // {"v":1,"x":{"nested":[1,2]},"h":[["t",["a","b"]]],"c":[[0,1,[1.5 as float16, 0.25 as float32]]]}
  std::string bytes = Unhex(
      "a4"
      "6176"
      "01"
      "6178"
      "a1"
      "666e6573746564"
      "82"
      "01"
      "02"
      "6168"
      "81"
      "82"
      "6174"
      "82"
      "6161"
      "6162"
      "6163"
      "81"
      "83"
      "00"
      "01"
      "82"
      "f93e00"
      "fa3e800000");
  Result<ChangeMessage> m = DecodeChangeMessage(bytes);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->changes.size(), 1u);
  EXPECT_EQ(m->changes[0].values[0], Value::Real(1.5));
  EXPECT_EQ(m->changes[0].values[1], Value::Real(0.25));
}

TEST(WireFormatTest, NewerVersionsAndBadInputAreRejectedClearly) {
  Result<ChangeMessage> newer = DecodeChangeMessage(Unhex("a1617602"));
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("version 2 is newer"), std::string::npos)
      << newer.status().message();
  Result<ChangeMessage> indefinite =
      DecodeChangeMessage(Unhex("bf6176"
                                "01ff"));
  ASSERT_FALSE(indefinite.ok());
  EXPECT_NE(indefinite.status().message().find("indefinite"), std::string::npos);
  // Values count must match the header's column count.
  Result<ChangeMessage> mismatch =
      DecodeChangeMessage(Unhex("a3617601"
                                "6168"
                                "81"
                                "82"
                                "6174"
                                "81"
                                "6161"
                                "6163"
                                "81"
                                "83"
                                "00"
                                "01"
                                "80"));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("change #0"), std::string::npos) << mismatch.status().message();
}

TEST(WireFormatTest, EveryTruncationFailsCleanly) {
  std::string full = EncodeChangeMessage(Sample());
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(DecodeChangeMessage(std::string_view(full).substr(0, n)).ok()) << "prefix " << n;
  }
}

TEST(WireFormatTest, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(12345);
  std::string good = EncodeChangeMessage(Sample());
  for (int i = 0; i < 5000; ++i) {
    std::string bytes = good;
    // Flip a few bytes of a valid message, or use pure noise.
    if (i % 2) {
      for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    } else {
      bytes.resize(rng() % 64);
      for (char& c : bytes) c = static_cast<char>(rng());
    }
    (void)DecodeChangeMessage(bytes);  // must not crash, hang, or allocate wildly (ASan build)
  }
  // Huge declared lengths are refused before allocating.
  EXPECT_FALSE(DecodeChangeMessage(Unhex("a2617601"
                                         "6163"
                                         "9bffffffffffffffff"))
                   .ok());
}

TEST(CompressionTest, RoundTripAndLimits) {
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "row " + std::to_string(i) + ";";
  ZstdCodec codec;
  Result<std::string> packed = codec.Compress(text);
  ASSERT_TRUE(packed.ok());
  EXPECT_LT(packed->size(), text.size() / 3);
  Result<std::string> unpacked = codec.Decompress(*packed, 1 << 20);
  ASSERT_TRUE(unpacked.ok()) << unpacked.status().message();
  EXPECT_EQ(*unpacked, text);
  // Reusing the contexts works.
  EXPECT_EQ(*codec.Decompress(*codec.Compress("again"), 100), "again");
  Result<std::string> limited = codec.Decompress(*packed, 1000);
  ASSERT_FALSE(limited.ok());
  EXPECT_NE(limited.status().message().find("limit"), std::string::npos);
  EXPECT_FALSE(codec.Decompress("not zstd", 1000).ok());
  EXPECT_FALSE(codec.Decompress(packed->substr(0, packed->size() / 2), 1 << 20).ok());
  Result<std::string> empty = ZstdDecompress(*ZstdCompress(""), 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST(CompressionTest, FramesWithoutContentSizeAreDecoded) {
  // A streamed frame does not record its size.
  std::string input(200000, 'x');
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 0);
  std::string frame(ZSTD_compressBound(input.size()), '\0');
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  ZSTD_outBuffer out{frame.data(), frame.size(), 0};
  ASSERT_EQ(ZSTD_compressStream2(cctx.get(), &out, &in, ZSTD_e_end), 0u);
  frame.resize(out.pos);
  ASSERT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  Result<std::string> back = ZstdDecompress(frame, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, input);
}

}  // namespace
}  // namespace marmot
