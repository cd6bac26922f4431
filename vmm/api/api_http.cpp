// SPDX-License-Identifier: MIT
#include "vmm/api/api_http.hpp"

#include <string>

#include <fmt/format.h>

namespace vmm::api {

namespace http = boost::beast::http;

void reset_parser(std::optional<RequestParser>& parser, HttpLimits limits)
{
    parser.emplace();
    parser->body_limit(limits.body_limit);
    parser->header_limit(static_cast<std::uint32_t>(limits.header_limit));
}

std::optional<HttpResponse> read_error_response(boost::system::error_code const& ec, HttpLimits limits)
{
    if (ec == http::error::body_limit)
        return error_response(413, fmt::format("request body exceeds {} bytes", limits.body_limit));
    if (ec == http::error::header_limit)
        return error_response(431, "request header section too large");
    // Beast's parse errors (bad method, version, field, chunk, Content-Length...) mean the bytes
    // were not HTTP: say so. end_of_stream/partial_message mean the peer went away.
    if (ec.category() == http::make_error_code(http::error::bad_method).category() && ec != http::error::end_of_stream
        && ec != http::error::partial_message)
        return error_response(400, fmt::format("malformed HTTP request: {}", ec.message()));
    return std::nullopt; // Peer closed, half-sent request timed out, or socket error.
}

std::optional<HttpResponse> refuse_after_header(RequestParser const& parser)
{
    if (parser.chunked()) // RFC 9110 §15.5.12: 411, the server refuses a body without Content-Length.
        return error_response(411, "chunked request bodies are not accepted: send the body with Content-Length");
    return std::nullopt;
}

HttpRequest to_request(RequestParser::value_type& message)
{
    return HttpRequest {
        .method = std::string(message.method_string()),
        .target = std::string(message.target()),
        .body = std::move(message.body()),
    };
}

WireResponse to_wire(HttpResponse response, bool keep_alive)
{
    WireResponse wire;
    wire.version(11);
    wire.result(response.status);
    wire.set(http::field::server, "microvmm");
    wire.set(http::field::content_type, response.content_type);
    for (auto const& [name, value] : response.headers)
        wire.set(name, value);
    wire.body() = std::move(response.body);
    wire.keep_alive(keep_alive);
    wire.prepare_payload();
    return wire;
}

} // namespace vmm::api
