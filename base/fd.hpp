// SPDX-License-Identifier: MIT
// Fd: the one owner of a file descriptor; closes it on destruction.
#pragma once

#include <unistd.h>

#include <utility>

namespace vmm {

class Fd {
public:
    Fd() = default;
    explicit Fd(int raw)
        : m_raw(raw)
    {
    }
    Fd(Fd&& other) noexcept
        : m_raw(std::exchange(other.m_raw, -1))
    {
    }
    Fd& operator=(Fd&& other) noexcept
    {
        if (this != &other)
            reset(std::exchange(other.m_raw, -1));
        return *this;
    }
    Fd(Fd const&) = delete;
    Fd& operator=(Fd const&) = delete;
    ~Fd() { reset(); }

    int get() const { return m_raw; }
    bool is_open() const { return m_raw >= 0; }
    [[nodiscard]] int release() { return std::exchange(m_raw, -1); }
    void reset(int raw = -1)
    {
        if (m_raw >= 0)
            ::close(m_raw); // close() errors are not actionable here.
        m_raw = raw;
    }

private:
    int m_raw { -1 };
};

} // namespace vmm
