// SPDX-License-Identifier: MIT
#include "vmm/toml_text_guard.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

namespace vmm {

namespace {

bool non_ascii(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// Decodes the UTF-8 sequence at text[at] (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF); nullopt if it is not one. `length` gets its byte count.
std::optional<char32_t> decode_utf8(std::string_view text, std::size_t at, std::size_t& length)
{
    auto const lead = static_cast<unsigned char>(text[at]);
    char32_t value = 0;
    char32_t minimum = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2, value = lead & 0x1F, minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, value = lead & 0x0F, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, value = lead & 0x07, minimum = 0x10000;
    } else {
        return std::nullopt;
    }
    if (at + length > text.size())
        return std::nullopt;
    for (std::size_t i = 1; i < length; ++i) {
        auto const next = static_cast<unsigned char>(text[at + i]);
        if ((next & 0xC0) != 0x80)
            return std::nullopt;
        value = (value << 6) | (next & 0x3F);
    }
    if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return std::nullopt;
    return value;
}

// TOML 1.0: "#" starts a comment to the end of the line; strings are "basic", 'literal',
// """multi-line basic""" and '''multi-line literal'''; only basic strings have escapes. Broken:
// after a single-line string that a newline cut off, where toml++ stops with its own error.
enum class Where { Outside, Comment, Basic, Literal, MultiBasic, MultiLiteral, Broken };

class Rewriter {
public:
    explicit Rewriter(std::string_view text)
        : m_text(text)
    {
        m_out.reserve(text.size() + text.size() / 8);
    }

    Result<std::string> run()
    {
        while (m_at < m_text.size()) {
            if (auto step = this->step(); !step)
                return std::unexpected(step.error());
        }
        return std::move(m_out);
    }

private:
    Result<void> step()
    {
        char const c = m_text[m_at];
        switch (m_where) {
        case Where::Outside:
            if (c == '#') {
                enter(Where::Comment, "#", 1);
            } else if (starts("\"\"\"")) {
                enter(Where::MultiBasic, "\"\"\"", 3);
            } else if (starts("'''")) {
                enter(Where::MultiLiteral, "\"\"\"", 3);
            } else if (c == '"') {
                enter(Where::Basic, "\"", 1);
            } else if (c == '\'') {
                enter(Where::Literal, "\"", 1);
            } else if (non_ascii(c)) {
                return refuse("a non-ASCII character outside a quoted string or a comment");
            } else {
                copy();
            }
            return {};
        case Where::Comment:
            if (c == '\n')
                m_where = Where::Outside;
            m_out += non_ascii(c) ? '?' : c;
            ++m_at;
            return {};
        case Where::Broken:
            m_out += non_ascii(c) ? '?' : c;
            ++m_at;
            return {};
        case Where::Basic:
        case Where::MultiBasic:
            if (c == '\\') {
                if (m_at + 1 < m_text.size() && non_ascii(m_text[m_at + 1])) {
                    ++m_at;
                    return refuse("unknown escape sequence: a backslash before a non-ASCII character");
                }
                copy(std::min<std::size_t>(2, m_text.size() - m_at)); // The escape stays as it is.
                return {};
            }
            if (m_where == Where::MultiBasic && starts("\"\"\"")) {
                copy(quote_run('"')); // Up to two quotes before the closing three are content.
                m_where = Where::Outside;
                return {};
            }
            if (m_where == Where::Basic && c == '"') {
                copy();
                m_where = Where::Outside;
                return {};
            }
            return content();
        case Where::Literal:
        case Where::MultiLiteral:
            if (m_where == Where::MultiLiteral && starts("'''")) {
                m_out.append(quote_run('\'') - 3, '\'');
                m_out += "\"\"\"";
                m_at += quote_run('\'');
                m_where = Where::Outside;
                return {};
            }
            if (m_where == Where::Literal && c == '\'') {
                m_out += '"';
                ++m_at;
                m_where = Where::Outside;
                return {};
            }
            if (c == '\\' || c == '"') { // Literal in the source, escaped in the basic string.
                m_out += '\\';
                copy();
                return {};
            }
            return content();
        }
        return {};
    }

    // One character of a string's content: non-ASCII ones as escapes.
    Result<void> content()
    {
        char const c = m_text[m_at];
        if (c == '\n' && (m_where == Where::Basic || m_where == Where::Literal)) {
            m_where = Where::Broken; // An unterminated string: toml++ says so at this line.
            copy();
            return {};
        }
        if (!non_ascii(c)) {
            copy();
            return {};
        }
        std::size_t length = 0;
        auto const value = decode_utf8(m_text, m_at, length);
        if (!value)
            return refuse("invalid UTF-8 in a string");
        m_out += *value <= 0xFFFF ? fmt::format("\\u{:04X}", static_cast<std::uint32_t>(*value))
                                  : fmt::format("\\U{:08X}", static_cast<std::uint32_t>(*value));
        m_at += length;
        return {};
    }

    bool starts(std::string_view token) const { return m_text.substr(m_at, token.size()) == token; }
    // How many `quote` characters follow from here, at most 5 (TOML allows 1-2 inside the closing).
    std::size_t quote_run(char quote) const
    {
        std::size_t n = 0;
        while (n < 5 && m_at + n < m_text.size() && m_text[m_at + n] == quote)
            ++n;
        return n;
    }
    void enter(Where where, std::string_view opening, std::size_t source_length)
    {
        m_out += opening;
        m_at += source_length;
        m_where = where;
    }
    void copy(std::size_t count = 1)
    {
        m_out.append(m_text.substr(m_at, count));
        m_at += count;
    }
    std::unexpected<Error> refuse(std::string_view what) const
    {
        auto const before = m_text.substr(0, m_at);
        auto const line = 1 + std::count(before.begin(), before.end(), '\n');
        auto const line_start = before.rfind('\n');
        auto const column = m_at - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
        return fail(Errc::Config, fmt::format("TOML syntax error at line {}, column {}: {}", line, column, what));
    }

    std::string_view m_text;
    std::string m_out;
    std::size_t m_at = 0;
    Where m_where = Where::Outside;
};

} // namespace

Result<std::string> ascii_toml_text(std::string_view text) { return Rewriter { text }.run(); }

} // namespace vmm
