// SPDX-License-Identifier: MIT
// Creates the API's listening Unix socket: mode 0600, stale socket files replaced, a socket a
// live process still listens on refused.
#pragma once

#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"

namespace vmm::api {

// Returns a listening SOCK_STREAM AF_UNIX socket bound to `path` with mode 0600.
// - `path` absent: created.
// - `path` is a socket nobody listens on (connect() -> ECONNREFUSED): stale, unlinked, recreated.
// - `path` is a socket that accepts a connection: Errc::Busy "api socket ... is in use by a live process".
// - `path` exists but is not a socket: Errc::Config (never unlink a user's file).
Result<Fd> listen_unix_socket(std::string const& path, int backlog = 512);

// Connects to a Unix stream socket (blocking). Used by the ctl client and the stale check.
Result<Fd> connect_unix_socket(std::string const& path);

} // namespace vmm::api
