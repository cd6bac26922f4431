// SPDX-License-Identifier: MIT
// ByteQueue: a FIFO of bytes with a fixed capacity (one hv_sock direction's buffer): append at
// the back, read and drop at the front, contiguous views for the copy into a packet. The storage
// is not zeroed (only bytes pushed are ever read): a connection's buffers (up to 256 KiB each)
// cost no page until used, and nothing per byte when made.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace vmm::hvsock {

class ByteQueue {
public:
    explicit ByteQueue(std::size_t capacity)
        : m_bytes(std::make_unique_for_overwrite<std::byte[]>(capacity))
        , m_capacity(capacity)
    {
    }
    std::size_t size() const { return m_size; }
    bool empty() const { return m_size == 0; }
    std::size_t capacity() const { return m_capacity; }
    std::size_t room() const { return m_capacity - m_size; }

    // Appends what fits; returns how many bytes were taken.
    std::size_t push(std::span<std::byte const> in)
    {
        std::size_t n = std::min(in.size(), room());
        if (n == 0)
            return 0; // An empty span may have no data pointer, which memcpy must not get.
        std::size_t tail = (m_head + m_size) % m_capacity;
        std::size_t first = std::min(n, m_capacity - tail);
        std::memcpy(m_bytes.get() + tail, in.data(), first);
        std::memcpy(m_bytes.get(), in.data() + first, n - first);
        m_size += n;
        return n;
    }
    // Copies up to out.size() bytes from the front without dropping them.
    std::size_t peek(std::span<std::byte> out) const
    {
        std::size_t n = std::min(out.size(), m_size);
        if (n == 0)
            return 0; // As in push().
        std::size_t first = std::min(n, m_capacity - m_head);
        std::memcpy(out.data(), m_bytes.get() + m_head, first);
        std::memcpy(out.data() + first, m_bytes.get(), n - first);
        return n;
    }
    void drop(std::size_t n)
    {
        n = std::min(n, m_size);
        m_head = (m_head + n) % m_capacity;
        m_size -= n;
        if (m_size == 0)
            m_head = 0;
    }
    std::size_t pop(std::span<std::byte> out)
    {
        std::size_t n = peek(out);
        drop(n);
        return n;
    }

private:
    std::unique_ptr<std::byte[]> m_bytes;
    std::size_t m_capacity;
    std::size_t m_head { 0 };
    std::size_t m_size { 0 };
};

} // namespace vmm::hvsock
