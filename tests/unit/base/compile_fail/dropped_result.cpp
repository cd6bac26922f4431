// SPDX-License-Identifier: MIT
// Must NOT compile: a Result<int> return value is dropped (check.py expects a nodiscard error).
#include "base/error.hpp"

vmm::Result<int> parse(int value);

void caller()
{
    parse(1);
}
