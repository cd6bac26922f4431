// SPDX-License-Identifier: MIT
// fuzz_api_request: bytes a REST client sends on one connection, through the server's own HTTP
// framing (vmm/api/api_http.hpp: Beast parser with the server's limits, read-error responses,
// wire responses) and ApiRouter, against a fake backend. Pipelined requests on a keep-alive
// connection are handled one after the other, as ApiServer does.
//
// Input: byte 0 sets the backend (bit 0: DM connected; bit 1: operations finish at once) and
// byte 1 the read size (1..256 bytes per read_some), so the parser meets every split of the
// bytes; the rest is the raw byte stream.
//
// Invariants after every request:
//  - the response serializes to well-formed HTTP/1.1 that parses back completely: the same status
//    (100..599 known to Beast), Content-Length equal to the body, no CR/LF inside header values;
//  - JSON responses parse; every 4xx/5xx carries a non-empty "fault_message" string; 405 has Allow,
//    202 has a Location naming the operation, 503 has Retry-After;
//  - an accepted target reaches the backend unchanged (the response's target_mib is the one in
//    the request body) and nothing else calls set_target;
//  - a read error closes the connection: nothing is parsed after it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "base/log.hpp"
#include "vmm/api/api_http.hpp"
#include "vmm/api/event_hub.hpp"

namespace {

using namespace vmm::api;
namespace http = boost::beast::http;

[[noreturn]] void broken(char const* what)
{
    std::fprintf(stderr, "fuzz_api_request invariant broken: %s\n", what);
    __builtin_trap();
}

// A SyncReadStream over the input that hands out at most `chunk` bytes per read.
class ByteStream {
public:
    using executor_type = void;
    ByteStream(std::string_view bytes, std::size_t chunk)
        : m_bytes(bytes)
        , m_chunk(chunk)
    {
    }
    template<typename Buffers>
    std::size_t read_some(Buffers const& buffers, boost::system::error_code& ec)
    {
        if (m_bytes.empty()) {
            ec = boost::asio::error::eof;
            return 0;
        }
        ec = {};
        std::size_t limit = std::min(m_chunk, m_bytes.size());
        std::size_t copied = boost::asio::buffer_copy(buffers, boost::asio::buffer(m_bytes.data(), limit));
        m_bytes.remove_prefix(copied);
        return copied;
    }
    template<typename Buffers>
    std::size_t read_some(Buffers const& buffers)
    {
        boost::system::error_code ec;
        auto n = read_some(buffers, ec);
        if (ec)
            throw boost::system::system_error(ec);
        return n;
    }

private:
    std::string_view m_bytes;
    std::size_t m_chunk;
};

class FakeBackend final : public ApiBackend {
public:
    bool connected = true;
    bool instant = false;
    std::optional<std::uint64_t> last_target; // Set by set_target, cleared by the harness.

    VmInfo vm_info() override { return { "running", 2, 12345, 1, "fuzz" }; }
    MemoryInfo memory_info() override
    {
        MemoryInfo info { .boot_mib = 512, .max_mib = 2048, .target_mib = m_target, .current_mib = m_target,
            .floor_mib = 128, .dm_connected = connected };
        if (!m_operations.empty())
            info.operation = m_operations.rbegin()->second;
        info.guest_status = GuestStatus { 300, 200, 5 };
        info.host = HostMemory { 512ull << 20, 0 };
        return info;
    }
    std::expected<Operation, SetTargetError> set_target(std::uint64_t target_mib) override
    {
        last_target = target_mib;
        if (!connected)
            return std::unexpected(SetTargetError::NotConnected);
        if (target_mib > 2048)
            return std::unexpected(SetTargetError::AboveMax);
        if (target_mib < 128)
            return std::unexpected(SetTargetError::BelowFloor);
        Operation op { .id = ++m_next_id, .kind = target_mib < m_target ? "balloon" : "hot_add", .from_mib = m_target,
            .target_mib = target_mib, .state = instant ? "done" : "running" };
        if (instant)
            op.finished_ms = 1;
        m_target = target_mib;
        m_operations[op.id] = op;
        if (m_operations.size() > 8)
            m_operations.erase(m_operations.begin()); // Forgets old ones like the real backend.
        return op;
    }
    std::optional<Operation> operation(std::uint64_t id) override
    {
        auto it = m_operations.find(id);
        if (it == m_operations.end())
            return std::nullopt;
        return it->second;
    }
    MemoryCounters counters() override { return { .operations_started = m_next_id }; }

private:
    std::uint64_t m_target = 512;
    std::uint64_t m_next_id = 0;
    std::map<std::uint64_t, Operation> m_operations;
};

bool has_header(HttpResponse const& response, std::string_view name)
{
    return std::ranges::any_of(response.headers, [&](auto const& header) { return header.first == name; });
}

// Serializes the response as the server sends it and checks the bytes are well-formed HTTP.
void check_wire(HttpResponse const& response, bool keep_alive)
{
    for (auto const& [name, value] : response.headers)
        if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos)
            broken("CR/LF in a response header");
    std::ostringstream out;
    out << to_wire(response, keep_alive);
    std::string const bytes = out.str();
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::system::error_code ec;
    std::size_t used = parser.put(boost::asio::buffer(bytes), ec);
    if (!ec && !parser.is_done())
        parser.put_eof(ec);
    if (ec || !parser.is_done() || used != bytes.size())
        broken("response is not well-formed HTTP");
    auto const& message = parser.get();
    if (message.result_int() != response.status || message.body() != response.body
        || message[http::field::content_length] != std::to_string(response.body.size()))
        broken("response status, body or Content-Length changed on the wire");
    if (message.keep_alive() != keep_alive)
        broken("response keep-alive differs from the connection's");
}

void check_response(HttpResponse const& response, HttpRequest const* request, FakeBackend& backend)
{
    if (response.status < 200 || response.status > 599)
        broken("status outside 200..599");
    if (response.content_type == "application/json") {
        auto body = nlohmann::json::parse(response.body, nullptr, false);
        if (body.is_discarded())
            broken("JSON response does not parse");
        if (response.status >= 400) {
            auto it = body.is_object() ? body.find("fault_message") : body.end();
            if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
                broken("error response without a fault_message");
        }
        if (request && request->target.starts_with("/api/v1/memory/target") && (response.status == 200 || response.status == 202)) {
            auto request_body = nlohmann::json::parse(request->body, nullptr, false);
            if (!backend.last_target || !body.is_object() || body.value("target_mib", ~0ull) != *backend.last_target
                || request_body.value("target_mib", ~0ull) != *backend.last_target)
                broken("accepted target differs from the request's");
        }
    } else if (response.status != 200) {
        broken("non-JSON error response");
    }
    if (response.status == 405 && !has_header(response, "Allow"))
        broken("405 without Allow");
    if (response.status == 202 && !has_header(response, "Location"))
        broken("202 without Location");
    if (response.status == 503 && !has_header(response, "Retry-After"))
        broken("503 without Retry-After");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    static bool const quiet = (vmm::log::set_level(vmm::log::Level::Off), true);
    (void)quiet;
    if (size < 2)
        return 0;
    FakeBackend backend;
    backend.connected = (data[0] & 1) == 0;
    backend.instant = (data[0] & 2) != 0;
    EventHub hub;
    ServerStats stats;
    ApiRouter router { backend, hub, stats };
    HttpLimits const limits; // The server's defaults.
    ByteStream stream { { reinterpret_cast<char const*>(data) + 2, size - 2 }, std::size_t { data[1] } + 1 };
    boost::beast::flat_buffer buffer;
    std::optional<RequestParser> parser;

    for (int requests = 0; requests < 64; ++requests) {
        reset_parser(parser, limits);
        boost::system::error_code ec;
        http::read_header(stream, buffer, *parser, ec);
        if (!ec && !parser->is_done()) {
            if (auto refusal = refuse_after_header(*parser)) {
                if (refusal->status != 411)
                    broken("a request refused after its header got a status other than 411");
                check_response(*refusal, nullptr, backend);
                check_wire(*refusal, false);
                return 0; // The server closes the connection: the body stays unread.
            }
            http::read(stream, buffer, *parser, ec);
        }
        if (ec) {
            if (auto response = read_error_response(ec, limits)) {
                if (response->status != 400 && response->status != 413 && response->status != 431)
                    broken("read error answered with an unexpected status");
                check_response(*response, nullptr, backend);
                check_wire(*response, false);
            }
            return 0; // The connection closes after a read error.
        }
        auto& message = parser->get();
        bool const keep_alive = message.keep_alive();
        HttpRequest request = to_request(message);
        backend.last_target.reset();
        auto result = router.route(request);
        if (backend.last_target && !request.target.starts_with("/api/v1/memory/target"))
            broken("set_target reached from another endpoint");
        HttpResponse response;
        if (auto* direct = std::get_if<HttpResponse>(&result)) {
            response = std::move(*direct);
        } else if (std::holds_alternative<StreamEvents>(result)) {
            if (request.method != "GET")
                broken("event stream for a non-GET");
            return 0; // The connection now streams events until it closes.
        } else {
            auto const& wait = std::get<WaitForOperation>(result);
            if (!wait.operation.running() || wait.timeout.count() <= 0 || wait.timeout.count() > 600'000)
                broken("wait for an operation that is not running, or for too long");
            response = operation_response(wait.operation); // What the client gets at the deadline.
        }
        check_response(response, &request, backend);
        check_wire(response, keep_alive);
        if (!keep_alive)
            return 0;
    }
    return 0;
}
