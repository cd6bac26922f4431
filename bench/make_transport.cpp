// SPDX-License-Identifier: MIT
// The DM benchmarks' transport: the real VMBus rings (bench/vmbus_transport.*).
#include "bench/dm_bench_guest.hpp"
#include "bench/vmbus_transport.hpp"

namespace vmm::bench {

std::unique_ptr<DmTransport> make_transport() { return std::make_unique<VmbusTransport>(); }

} // namespace vmm::bench
