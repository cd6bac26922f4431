// SPDX-License-Identifier: MIT
// Linked into the test guest's hv_kvp_daemon (guest/build.sh, -Wl,--wrap=fcntl). The daemon locks
// its pool files with fcntl(F_SETLKW) and unlocks them with F_SETLK/F_UNLCK, and exits when either
// fails (tools/hv/hv_kvp_daemon.c kvp_acquire_lock, kvp_release_lock). The test guest's kernel is
// built from tinyconfig without CONFIG_FILE_LOCKING, where every record lock fails with EACCES
// (include/linux/fs.h:1212-1216, the !CONFIG_FILE_LOCKING fcntl_setlk). Only the daemon touches
// the pool files in the test guest, so such a lock is treated as taken. With real file locking
// neither call can fail with EACCES (a blocking lock waits, an unlock never conflicts): this then
// changes nothing, and can go once config.fragment enables CONFIG_FILE_LOCKING.
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>

int __real_fcntl(int fd, int cmd, ...);

int __wrap_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *); // glibc's fcntl reads its third argument the same way
	va_end(ap);
	int ret = __real_fcntl(fd, cmd, arg);
	if (ret == -1 && errno == EACCES) {
		struct flock const *lock = arg;
		if (cmd == F_SETLKW || (cmd == F_SETLK && lock->l_type == F_UNLCK))
			return 0;
	}
	return ret;
}
