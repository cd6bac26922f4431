// SPDX-License-Identifier: MIT
// fmt's compiled part, built into the program instead of linked from libfmt.so: libfmt.so
// depends on libstdc++.so, and microvmm links the C++ runtime statically so that only the code
// it uses is resident (BENCHMARKS.md §5, RSS). Plays the role of fmt's own src/format.cc (not
// shipped by Debian's libfmt-dev): include the implementation once and instantiate the
// templates fmt/format.h declares `extern template` (fmt 9.1, /usr/include/fmt/format.h).
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

template FMT_API locale_ref::locale_ref(std::locale const& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;

template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(char const*, char const*);
template FMT_API void vformat_to(buffer<char>&, string_view, basic_format_args<FMT_BUFFER_CONTEXT(char)>, locale_ref);

template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template FMT_API auto decimal_point_impl(locale_ref) -> wchar_t;
template FMT_API void buffer<wchar_t>::append(wchar_t const*, wchar_t const*);

} // namespace detail
FMT_END_NAMESPACE
