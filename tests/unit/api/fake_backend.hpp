// SPDX-License-Identifier: MIT
// FakeBackend: an in-memory ApiBackend for the API tests. Tests drive operations by hand
// (advance/finish) and it publishes the same events the DM engine is expected to publish.
#pragma once

#include <mutex>
#include <optional>

#include "vmm/api/api_backend.hpp"
#include "vmm/api/api_events.hpp"
#include "vmm/api/api_json.hpp"
#include "vmm/api/event_hub.hpp"

namespace vmm::api::test {

class FakeBackend final : public ApiBackend {
public:
    explicit FakeBackend(EventHub& hub)
        : m_hub(hub)
    {
        m_memory.boot_mib = 1024;
        m_memory.max_mib = 4096;
        m_memory.floor_mib = 256;
        m_memory.target_mib = 1024;
        m_memory.current_mib = 1024;
        m_memory.host = HostMemory { 300 * 1024 * 1024 + 5, 7 * 1024 * 1024 };
        m_memory.dm_connected = true;
        m_memory.dm_protocol_version = 0x20000;
    }

    VmInfo vm_info() override { return VmInfo { "running", 2, 12345, 1, "0.1.0-test", {}, {} }; }

    // The first request starts a graceful shutdown, later ones find it under way (409).
    std::expected<ShutdownStarted, std::string> shutdown(ShutdownRequest const& request) override
    {
        std::lock_guard lock(m_mutex);
        if (m_shutdowns++ > 0)
            return std::unexpected(std::string("a shutdown is already under way (requested)"));
        m_last_shutdown = request;
        return ShutdownStarted { "guest", request.timeout_ms.value_or(30000), request.reboot, std::nullopt };
    }
    std::optional<ShutdownRequest> last_shutdown()
    {
        std::lock_guard lock(m_mutex);
        return m_last_shutdown;
    }

    MemoryInfo memory_info() override
    {
        std::lock_guard lock(m_mutex);
        auto info = m_memory;
        info.operation = m_last;
        return info;
    }

    std::expected<Operation, SetTargetError> set_target(std::uint64_t target_mib) override
    {
        std::lock_guard lock(m_mutex);
        ++m_set_calls;
        if (m_memory.policy.mode == "auto")
            return std::unexpected(SetTargetError::AutoMode);
        if (!m_memory.dm_connected)
            return std::unexpected(SetTargetError::NotConnected);
        if (target_mib > m_memory.max_mib)
            return std::unexpected(SetTargetError::AboveMax);
        if (target_mib < m_memory.floor_mib)
            return std::unexpected(SetTargetError::BelowFloor);
        if (m_last && m_last->running()) {
            m_last->state = "superseded";
            ++m_counters.operations_superseded;
        }
        Operation op;
        op.id = ++m_next_id;
        op.from_mib = m_memory.current_mib;
        op.target_mib = target_mib;
        op.started_ms = 1000;
        std::uint64_t const distance = target_mib > op.from_mib ? target_mib - op.from_mib : op.from_mib - target_mib;
        op.kind = distance == 0 ? "idle" : target_mib < op.from_mib ? "balloon" : "hot_add";
        op.state = distance == 0 ? "done" : "running";
        op.remaining_mib = distance;
        m_memory.target_mib = target_mib;
        m_last = op;
        ++m_counters.operations_started;
        return op;
    }

    std::optional<Operation> operation(std::uint64_t id) override
    {
        std::lock_guard lock(m_mutex);
        if (m_last && m_last->id == id)
            return m_last;
        return std::nullopt;
    }

    MemoryCounters counters() override
    {
        std::lock_guard lock(m_mutex);
        return m_counters;
    }

    // Mode and weight only; a weight above 100 is refused as the real backend does.
    std::expected<MemoryPolicy, std::string> set_policy(PolicyUpdate const& update) override
    {
        std::lock_guard lock(m_mutex);
        if (update.weight && *update.weight > 100)
            return std::unexpected(std::string("field 'weight' must be 0..100"));
        if (update.mode)
            m_memory.policy.mode = *update.mode;
        if (update.weight)
            m_memory.policy.weight = *update.weight;
        return m_memory.policy;
    }

    // Stores the lease as given (expires_in_ms = lease_ms: the fake has no clock).
    // One NIC (index 0) whose link the API switches.
    std::expected<NicInfo, std::string> set_link(std::uint32_t nic, bool up) override
    {
        if (nic != 0)
            return std::unexpected("no NIC " + std::to_string(nic) + " (this VM has 1)");
        NicInfo info;
        info.tap = "tap0";
        info.link = up ? "up" : "down";
        info.rx_dropped_by = { { "link_down", 3 } };
        info.rx_dropped = 3;
        return info;
    }
    std::expected<std::optional<MemoryCeiling>, std::string> set_ceiling(std::optional<CeilingRequest> const& request) override
    {
        std::lock_guard lock(m_mutex);
        if (!request) {
            m_memory.ceiling.reset();
            return std::optional<MemoryCeiling> {};
        }
        if (!m_memory.ceiling || m_memory.ceiling->mib != request->mib)
            ++m_counters.ceiling_changes;
        m_memory.ceiling = MemoryCeiling { request->mib, request->lease_ms, request->lease_ms, m_memory.policy.mode == "auto" };
        return m_memory.ceiling;
    }

    std::string extra_metrics() override { return "# HELP fake_extra x\n# TYPE fake_extra gauge\nfake_extra 7\n"; }

    // Test controls.
    void set_connected(bool connected)
    {
        std::lock_guard lock(m_mutex);
        m_memory.dm_connected = connected;
    }
    // Any field of GET /api/v1/memory (policy limits, last decision...).
    template<typename F>
    void edit_memory(F&& edit)
    {
        std::lock_guard lock(m_mutex);
        edit(m_memory);
    }
    void set_guest_status(GuestStatus status)
    {
        std::lock_guard lock(m_mutex);
        m_memory.guest_status = status;
    }
    void count_rejected_range()
    {
        std::lock_guard lock(m_mutex);
        ++m_counters.rejected_guest_ranges;
    }
    std::optional<Operation> last()
    {
        std::lock_guard lock(m_mutex);
        return m_last;
    }
    int set_calls()
    {
        std::lock_guard lock(m_mutex);
        return m_set_calls;
    }
    // Moves the running operation `mib` closer and publishes operation_progress.
    void advance(std::uint64_t mib)
    {
        Operation event;
        {
            std::lock_guard lock(m_mutex);
            if (!m_last || !m_last->running())
                return;
            mib = std::min(mib, m_last->remaining_mib);
            m_last->done_mib += mib;
            m_last->remaining_mib -= mib;
            if (m_last->target_mib < m_memory.current_mib)
                m_memory.current_mib -= mib;
            else
                m_memory.current_mib += mib;
            event = *m_last;
        }
        publish_operation_progress(m_hub, event);
    }
    // Ends the running operation in `state` and publishes operation_done.
    void finish(std::string state = "done")
    {
        Operation event;
        {
            std::lock_guard lock(m_mutex);
            if (!m_last || !m_last->running())
                return;
            if (state == "done") {
                m_memory.current_mib = m_last->target_mib;
                m_last->done_mib += m_last->remaining_mib;
                m_last->remaining_mib = 0;
                ++m_counters.operations_done;
            } else {
                m_last->reason = "test says " + state;
                ++m_counters.operations_failed;
            }
            m_last->state = state;
            m_last->finished_ms = 2000;
            event = *m_last;
        }
        publish_operation_done(m_hub, event);
    }

private:
    EventHub& m_hub;
    std::mutex m_mutex;
    int m_shutdowns = 0;
    std::optional<ShutdownRequest> m_last_shutdown;
    MemoryInfo m_memory;
    MemoryCounters m_counters;
    std::optional<Operation> m_last;
    std::uint64_t m_next_id = 0;
    int m_set_calls = 0;
};

} // namespace vmm::api::test
