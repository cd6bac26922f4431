// SPDX-License-Identifier: MIT
// ByteSource: random-access reads from an untrusted byte image (kernel, initrd) without
// holding it in memory. Loaders read headers into small structs and copy payloads straight
// into their destination (guest RAM), so no buffer ever holds the whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "base/error.hpp"
#include "base/wire.hpp"

namespace vmm {

class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual std::uint64_t size() const = 0;
    // Copies [offset, offset + out.size()) into `out`. The caller checks the range against
    // size() first; a source that cannot deliver it (file shrank, I/O error) fails.
    virtual Result<void> read_at(std::uint64_t offset, std::span<std::byte> out) const = 0;

    // Copies [offset, offset + size) into the file `fd` at `fd_offset` inside the kernel,
    // without touching a user mapping of either (guest RAM's memfd: the pages are allocated by
    // the file's write path instead of one page fault each, ~35 % faster here, BENCHMARKS.md
    // "Start-up"). False, with nothing copied, when this source cannot (the caller then uses
    // read_at into its mapping). The caller checks both ranges first; the file position of
    // `fd` is used and left anywhere (its owner does not use it).
    virtual Result<bool> copy_to_file(std::uint64_t offset, std::uint64_t size, int fd, std::uint64_t fd_offset) const
    {
        (void)offset, (void)size, (void)fd, (void)fd_offset;
        return false;
    }

    // True when [offset, offset + length) lies inside the source (no overflow).
    bool contains(std::uint64_t offset, std::uint64_t length) const
    {
        return offset <= size() && length <= size() - offset;
    }
    // A wire struct at `offset`: nullopt if it does not fit, an error if the read fails.
    template<Wire T>
    Result<std::optional<T>> read_wire(std::uint64_t offset) const
    {
        if (!contains(offset, sizeof(T)))
            return std::optional<T> {};
        T value;
        VMM_TRY(read_at(offset, std::as_writable_bytes(std::span { &value, 1 })));
        return std::optional<T> { value };
    }
};

// Bytes already in memory (tests, fuzzing, generated images).
class SpanSource final : public ByteSource {
public:
    explicit SpanSource(std::span<std::byte const> bytes)
        : m_bytes(bytes)
    {
    }
    std::uint64_t size() const override { return m_bytes.size(); }
    Result<void> read_at(std::uint64_t offset, std::span<std::byte> out) const override
    {
        if (!contains(offset, out.size()))
            return fail(Errc::OutOfRange, "read past the end of the image", offset);
        if (!out.empty())
            std::memcpy(out.data(), m_bytes.data() + offset, out.size());
        return {};
    }

private:
    std::span<std::byte const> m_bytes;
};

} // namespace vmm
