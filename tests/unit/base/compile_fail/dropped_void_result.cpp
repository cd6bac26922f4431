// SPDX-License-Identifier: MIT
// Must NOT compile: a Result<void> from a member function is dropped, the
// `(void)memslots->reset()` shape of bug minus the cast.
#include "base/error.hpp"

struct Slots {
    vmm::Result<void> reset();
};

void caller(Slots* slots)
{
    slots->reset();
}
