// SPDX-License-Identifier: MIT
// A small FuzzedDataProvider look-alike (same method names, consumes from the front) so the VMBus
// fuzz cases also build with g++ and the unit tests can replay the fuzz corpus.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <vector>

namespace vmm::test {

class FuzzInput {
public:
    explicit FuzzInput(std::span<std::uint8_t const> bytes)
        : m_bytes(bytes)
    {
    }
    std::size_t remaining_bytes() const { return m_bytes.size(); }

    template<typename T>
    T ConsumeIntegral()
    {
        T value {};
        std::size_t count = std::min(sizeof(T), m_bytes.size());
        if (count != 0) // memcpy from an empty span's null data() is UB even for 0 bytes.
            std::memcpy(&value, m_bytes.data(), count);
        m_bytes = m_bytes.subspan(count);
        return value;
    }
    // Uniform enough for fuzzing; exhausted input yields `min`.
    template<typename T>
    T ConsumeIntegralInRange(T min, T max)
    {
        std::uint64_t range = static_cast<std::uint64_t>(max) - static_cast<std::uint64_t>(min);
        std::uint64_t raw = 0;
        std::size_t used = 0;
        while (used < sizeof(std::uint64_t) && (range >> (8 * used)) != 0 && !m_bytes.empty()) {
            raw |= std::uint64_t { m_bytes[0] } << (8 * used);
            m_bytes = m_bytes.subspan(1);
            ++used;
        }
        if (range != UINT64_MAX)
            raw %= range + 1;
        return static_cast<T>(static_cast<std::uint64_t>(min) + raw);
    }
    bool ConsumeBool() { return (ConsumeIntegral<std::uint8_t>() & 1) != 0; }
    template<typename T>
    std::vector<T> ConsumeBytes(std::size_t count)
    {
        count = std::min(count, m_bytes.size());
        std::vector<T> out(count);
        if (count != 0)
            std::memcpy(out.data(), m_bytes.data(), count);
        m_bytes = m_bytes.subspan(count);
        return out;
    }
    template<typename T>
    T PickValueInArray(std::initializer_list<T> values)
    {
        return *(values.begin() + ConsumeIntegralInRange<std::size_t>(0, values.size() - 1));
    }
    template<typename T, std::size_t N>
    T PickValueInArray(std::array<T, N> const& values)
    {
        return values[ConsumeIntegralInRange<std::size_t>(0, N - 1)];
    }

private:
    std::span<std::uint8_t const> m_bytes;
};

// Fuzz cases shared by the libFuzzer targets and the corpus-replay unit test. Each returns false
// when an invariant is violated (the fuzz target then traps).
bool vmbus_message_case(std::span<std::uint8_t const> bytes);
bool vmbus_ring_case(std::span<std::uint8_t const> bytes);

} // namespace vmm::test
