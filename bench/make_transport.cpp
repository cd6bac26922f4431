// SPDX-License-Identifier: MIT
// Picks the DM transport: the real VMBus rings when devices/vmbus is part of the build.
#include "bench/dm_bench_guest.hpp"

#ifdef BENCH_HAVE_VMBUS
#include "bench/vmbus_transport.hpp"
#endif

namespace vmm::bench {

std::unique_ptr<DmTransport> make_transport()
{
#ifdef BENCH_HAVE_VMBUS
    return std::make_unique<VmbusTransport>();
#else
    return std::make_unique<DirectTransport>();
#endif
}

} // namespace vmm::bench
