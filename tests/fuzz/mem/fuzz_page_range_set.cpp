// SPDX-License-Identifier: MIT
// Differential fuzzer: PageRangeSet insert/remove/pop_front/queries against a set of page
// numbers, with the tree invariants (sorted, disjoint, never touching, total) after every step.
#include "mem/page_range_set.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <set>

using namespace vmm::mem;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    FuzzedDataProvider input { data, size };
    PageRangeSet set;
    std::set<std::uint64_t> model;
    while (input.remaining_bytes() > 0) {
        auto start = input.ConsumeIntegralInRange<std::uint64_t>(0, 4096);
        auto count = input.ConsumeIntegralInRange<std::uint64_t>(1, 64);
        auto range = PageRange::from_guest(start, count).value();
        std::uint64_t present = 0;
        for (auto page = start; page < start + count; ++page)
            present += model.count(page);
        switch (input.ConsumeIntegralInRange<int>(0, 4)) {
        case 4: {
            bool inserted = set.insert_if_disjoint(range);
            if (inserted != (present == 0))
                __builtin_trap();
            if (inserted) {
                for (auto page = start; page < start + count; ++page)
                    model.insert(page);
            }
            break;
        }
        case 0:
            if (set.insert(range).raw() != present)
                __builtin_trap();
            for (auto page = start; page < start + count; ++page)
                model.insert(page);
            break;
        case 1:
            if (set.remove(range).raw() != present)
                __builtin_trap();
            for (auto page = start; page < start + count; ++page)
                model.erase(page);
            break;
        case 2: {
            auto popped = set.pop_front(PageCount { count });
            if (popped.has_value() == model.empty())
                __builtin_trap();
            if (popped) {
                if (popped->start.raw() != *model.begin() || popped->count.raw() > count)
                    __builtin_trap();
                for (auto page = popped->start.raw(); page < popped->end().raw(); ++page) {
                    if (model.erase(page) != 1)
                        __builtin_trap();
                }
            }
            break;
        }
        default:
            if (set.intersects(range) != (present > 0) || set.contains_all(range) != (present == count)
                || set.overlap(range).raw() != present)
                __builtin_trap();
        }
        std::uint64_t total = 0;
        std::optional<PageRange> previous;
        for (auto run : set) {
            if (run.empty() || (previous && previous->end() >= run.start))
                __builtin_trap();
            total += run.count.raw();
            previous = run;
        }
        if (total != model.size() || set.total().raw() != total)
            __builtin_trap();
    }
    return 0;
}
