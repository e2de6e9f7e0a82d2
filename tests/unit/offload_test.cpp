// SPDX-License-Identifier: Apache-2.0
// The journal's form of the checksum offload bits --corrupt turns off (sys/offload.hpp):
// what it writes it reads back, and what it never writes is refused, so a damaged entry is
// set aside instead of turning on features nobody turned off.
#include <gtest/gtest.h>

#include "sys/offload.hpp"

namespace tardy {
namespace {

TEST(TxCsumBits, RoundTripsThroughTheJournalsText) {
    TxCsumBits b;
    b.words = {0x1a00000u, 0u};
    EXPECT_EQ(b.encode(), "1a00000,0");
    auto back = TxCsumBits::decode(b.encode());
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->words, b.words);
    EXPECT_FALSE(back->empty());
    EXPECT_TRUE(TxCsumBits{}.empty());
}

TEST(TxCsumBits, RefusesWhatItNeverWrites) {
    for (const char* bad : {"", ",", "0", "0,0", "1,", ",1", "x", "1 2", "-1", "123456789", "1,,2", "0x1"})
        EXPECT_FALSE(TxCsumBits::decode(bad)) << "'" << bad << "'";
}

}  // namespace
}  // namespace tardy
