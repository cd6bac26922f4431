// SPDX-License-Identifier: MIT
// The one lock order (base/ranked_mutex.hpp): outer-to-inner nesting works, an inversion or a
// re-entry aborts at the first attempt, whatever the interleaving.
#include <mutex>

#include <gtest/gtest.h>

#include "base/ranked_mutex.hpp"

namespace vmm {
namespace {

TEST(RankedMutex, NestsOuterToInner)
{
    RankedMutex<LockRank::DmBackend> outer;
    RankedMutex<LockRank::VmbusGlue> middle;
    RankedMutex<LockRank::EventHub> inner;
    std::lock_guard a { outer };
    std::lock_guard b { middle };
    std::lock_guard c { inner };
    SUCCEED();
}

TEST(RankedMutex, ReleasedRanksCanBeTakenAgain)
{
    RankedMutex<LockRank::VmbusGlue> glue;
    RankedMutex<LockRank::DmBackend> backend;
    {
        std::lock_guard a { glue };
    }
    std::lock_guard b { backend };
    std::lock_guard c { glue };
    EXPECT_TRUE(glue.rank == LockRank::VmbusGlue);
}

TEST(RankedMutexDeathTest, InversionAborts)
{
    RankedMutex<LockRank::DmBackend> backend;
    RankedMutex<LockRank::VmbusGlue> glue;
    EXPECT_DEATH(
        {
            std::lock_guard a { glue };
            std::lock_guard b { backend };
        },
        "lock order violated: taking DmBackend while holding VmbusGlue");
}

TEST(RankedMutexDeathTest, ReentryAborts)
{
    RankedMutex<LockRank::VmbusGlue> glue;
    EXPECT_DEATH(
        {
            std::lock_guard a { glue };
            std::lock_guard b { glue };
        },
        "taking VmbusGlue while holding VmbusGlue");
}

} // namespace
} // namespace vmm
