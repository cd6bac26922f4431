// SPDX-License-Identifier: MIT
#include "vmm/sandbox/least_privilege.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace vmm::sandbox {

namespace {

// glibc has no capget/capset wrappers; version 3 covers 64 capabilities in two words.
bool read_caps(__user_cap_data_struct (&data)[2])
{
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    return ::syscall(SYS_capget, &header, data) == 0;
}

} // namespace

Result<void> set_no_new_privs()
{
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return fail_errno("prctl(PR_SET_NO_NEW_PRIVS)");
    return {};
}

bool has_no_capabilities()
{
    __user_cap_data_struct data[2] {};
    if (!read_caps(data))
        return false;
    for (auto const& word : data)
        if (word.effective != 0 || word.permitted != 0 || word.inheritable != 0)
            return false;
    return true;
}

Result<void> drop_capabilities()
{
    if (has_no_capabilities())
        return {}; // Nothing to drop; and without CAP_SETPCAP the bounding set cannot change.
    // Bounding set first: it needs CAP_SETPCAP, which the capset below removes. EINVAL ends the
    // walk at the kernel's last capability (cap_last_cap); EPERM: not ours to drop.
    for (int cap = 0; cap < 64; ++cap) {
        int const held = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (held < 0)
            break;
        if (held == 1 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
            return fail_errno("prctl(PR_CAPBSET_DROP)");
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return fail_errno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    __user_cap_data_struct data[2] {};
    if (::syscall(SYS_capset, &header, data) < 0)
        return fail_errno("capset (dropping every capability)");
    return {};
}

} // namespace vmm::sandbox
