// SPDX-License-Identifier: MIT
// The HTTP/1.1 framing of the REST API, without sockets: how a request is parsed (Beast parser
// and its limits), which response a read error gets, and how an HttpResponse becomes a Beast
// message. ApiServer's connections use exactly these; so does the fuzz target
// (tests/fuzz/api/fuzz_api_request.cpp), which feeds bytes through them and the router.
#pragma once

#include <cstddef>
#include <optional>

#include <boost/beast/http.hpp>

#include "vmm/api/api_router.hpp"

namespace vmm::api {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;
using WireResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpLimits {
    std::size_t body_limit = 64 * 1024;   // Larger bodies: 413.
    std::size_t header_limit = 16 * 1024; // Larger header sections: 431.
};

// A fresh parser for the next request on a connection.
void reset_parser(std::optional<RequestParser>&, HttpLimits);
// The response a failed read gets (413, 431, or 400 for bytes that are not HTTP), or nullopt when
// the peer went away or the socket failed: the connection is then closed without a response.
std::optional<HttpResponse> read_error_response(boost::system::error_code const&, HttpLimits);
// The response a request gets as soon as its header is parsed, before any body is read, or
// nullopt to go on and read the body. Chunked request bodies get 411: every API body is a small
// JSON object a client can send with Content-Length, and Boost 1.74's chunk parser asserts on a
// final chunk split across reads ("0\r\n", then "\r\n": basic_parser.ipp parse_chunk_header,
// fixed upstream in boostorg/beast#2861), which a client could use to abort the VMM. The
// connection is closed after this response: the unread body would be taken for the next request.
std::optional<HttpResponse> refuse_after_header(RequestParser const&);
// Moves method, target and body out of a parsed message.
HttpRequest to_request(RequestParser::value_type& message);
WireResponse to_wire(HttpResponse response, bool keep_alive);

} // namespace vmm::api
