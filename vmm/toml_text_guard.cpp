// SPDX-License-Identifier: MIT
#include "vmm/toml_text_guard.hpp"

#include <fmt/format.h>

namespace vmm {

namespace {

bool non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }
bool blank_or_newline(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// TOML 1.0 (toml.io/en/v1.0.0): "#" starts a comment to the end of the line; strings are "basic",
// 'literal', """multi-line basic""" and '''multi-line literal'''; only basic strings have escapes.
enum class Where { Outside, Comment, Basic, Literal, MultiBasic, MultiLiteral };

} // namespace

Result<void> check_toml_text(std::string_view text)
{
    Where where = Where::Outside;
    std::size_t line = 1;
    std::size_t line_start = 0;
    auto refuse = [&](std::size_t at, std::string_view what) -> Result<void> {
        return fail(Errc::Config,
            fmt::format("TOML syntax error at line {}, column {}: {}", line, at - line_start + 1, what));
    };
    auto starts = [&](std::size_t at, std::string_view token) { return text.substr(at, token.size()) == token; };
    for (std::size_t i = 0; i < text.size(); ++i) {
        char const c = text[i];
        if (c == '\n') {
            ++line;
            line_start = i + 1;
            if (where == Where::Comment)
                where = Where::Outside;
            else if (where == Where::Basic || where == Where::Literal)
                return {}; // An unterminated string: toml++ reports it before reading further.
            continue;
        }
        switch (where) {
        case Where::Outside:
            if (c == '#') {
                where = Where::Comment;
            } else if (starts(i, "\"\"\"")) {
                where = Where::MultiBasic;
                i += 2;
            } else if (starts(i, "'''")) {
                where = Where::MultiLiteral;
                i += 2;
            } else if (c == '"') {
                where = Where::Basic;
            } else if (c == '\'') {
                where = Where::Literal;
            } else if (non_ascii(c)) {
                return refuse(i, "a non-ASCII character outside a quoted string or a comment");
            }
            break;
        case Where::Comment:
            break;
        case Where::Basic:
            if (c == '\\')
                ++i; // The escaped character, whatever it is, stays inside the string.
            else if (c == '"')
                where = Where::Outside;
            break;
        case Where::Literal:
            if (c == '\'')
                where = Where::Outside;
            break;
        case Where::MultiBasic:
            if (c == '\\') {
                std::size_t next = i + 1;
                while (next < text.size() && blank_or_newline(text[next]))
                    ++next;
                if (next < text.size() && non_ascii(text[next]))
                    return refuse(i, "a non-ASCII character after a multi-line string's backslash (escape it as "
                                     "\\uXXXX, or end the previous line without the backslash)");
                if (i + 1 < text.size() && text[i + 1] != '\n')
                    ++i; // An escape such as \" or \\; a newline is left for the line count.
            } else if (starts(i, "\"\"\"")) {
                where = Where::Outside; // Up to two more quotes may close it; they read as "" outside.
                i += 2;
            }
            break;
        case Where::MultiLiteral:
            if (starts(i, "'''")) {
                where = Where::Outside;
                i += 2;
            }
            break;
        }
    }
    return {};
}

} // namespace vmm
