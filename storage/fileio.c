/*
 * fileio.c - the I/O seam: real syscalls behind a table, and a fault plan in
 * front of it (see fileio.h).
 *
 * The plan is checked before the table is called, so an injected fault never
 * reaches the disk: a failed fdatasync really did not sync, which is the
 * pessimistic case the callers must survive. The one exception is the
 * `partial` write, which writes half the bytes for real, because a short
 * write that changed nothing would not test what a half-written record does.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
static int real_fallocate(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }

static const struct fio_ops real_ops = {
	.open = real_open,
	.write = write,
	.pwrite = pwrite,
	.fdatasync = fdatasync,
	.fsync = fsync,
	.ftruncate = ftruncate,
	.rename = rename,
	.close = close,
	.fallocate = real_fallocate,
	.unlink = unlink,
	.mkdir = mkdir,
};

static _Atomic(const struct fio_ops *) cur_ops = &real_ops;

struct fault_slot {
	atomic_bool used;
	struct fio_fault f;
};

static struct fault_slot faults[FIO_MAX_FAULTS];
static atomic_long calls[FIO_NOPS];
static atomic_long fired;

void fio_set_ops(const struct fio_ops *ops) { atomic_store(&cur_ops, ops ? ops : &real_ops); }
const struct fio_ops *fio_real_ops(void) { return &real_ops; }

bool fio_fault_add(const struct fio_fault *f)
{
	if (f->op < 0 || f->op >= FIO_NOPS)
		return false;
	for (int i = 0; i < FIO_MAX_FAULTS; i++) {
		if (atomic_load(&faults[i].used))
			continue;
		faults[i].f = *f;
		atomic_store(&calls[f->op], 0);
		atomic_store(&faults[i].used, true);
		return true;
	}
	return false;
}

void fio_fault_clear(void)
{
	for (int i = 0; i < FIO_MAX_FAULTS; i++)
		atomic_store(&faults[i].used, false);
	for (int i = 0; i < FIO_NOPS; i++)
		atomic_store(&calls[i], 0);
	atomic_store(&fired, 0);
}

long fio_calls(enum fio_op op) { return op < FIO_NOPS ? atomic_load(&calls[op]) : 0; }
long fio_faults_fired(void) { return atomic_load(&fired); }

const char *fio_op_name(enum fio_op op)
{
	static const char *names[FIO_NOPS] = {
		"open", "write", "pwrite", "fdatasync", "fsync", "ftruncate",
		"rename", "close", "fallocate", "unlink", "mkdir",
	};
	return op < FIO_NOPS ? names[op] : "?";
}

enum verdict { RUN, FAIL, HALF };

/* Counts the call and says what the plan wants done with it. */
static enum verdict plan(enum fio_op op, int *err)
{
	long n = atomic_fetch_add(&calls[op], 1) + 1;
	for (int i = 0; i < FIO_MAX_FAULTS; i++) {
		if (!atomic_load(&faults[i].used) || faults[i].f.op != op)
			continue;
		const struct fio_fault *f = &faults[i].f;
		*err = f->err;
		if (f->partial && (op == FIO_WRITE || op == FIO_PWRITE)) {
			if (n == f->nth) {
				atomic_fetch_add(&fired, 1);
				return HALF;
			}
			if (n > f->nth) {
				atomic_fetch_add(&fired, 1);
				return FAIL;
			}
			continue;
		}
		if (n == f->nth || (f->sticky && n > f->nth)) {
			atomic_fetch_add(&fired, 1);
			return FAIL;
		}
	}
	return RUN;
}

static const struct fio_ops *ops(void) { return atomic_load(&cur_ops); }

#define FAIL_IF_PLANNED(op)                \
	do {                               \
		int e_ = 0;                \
		if (plan(op, &e_) != RUN) { \
			errno = e_;        \
			return -1;         \
		}                          \
	} while (0)

int fio_open(const char *path, int flags, mode_t mode)
{
	FAIL_IF_PLANNED(FIO_OPEN);
	return ops()->open(path, flags, mode);
}

ssize_t fio_write(int fd, const void *buf, size_t n)
{
	int e = 0;
	switch (plan(FIO_WRITE, &e)) {
	case FAIL:
		errno = e;
		return -1;
	case HALF:
		return ops()->write(fd, buf, n / 2);
	default:
		return ops()->write(fd, buf, n);
	}
}

ssize_t fio_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int e = 0;
	switch (plan(FIO_PWRITE, &e)) {
	case FAIL:
		errno = e;
		return -1;
	case HALF:
		return ops()->pwrite(fd, buf, n / 2, off);
	default:
		return ops()->pwrite(fd, buf, n, off);
	}
}

int fio_fdatasync(int fd)
{
	FAIL_IF_PLANNED(FIO_FDATASYNC);
	return ops()->fdatasync(fd);
}

int fio_fsync(int fd)
{
	FAIL_IF_PLANNED(FIO_FSYNC);
	return ops()->fsync(fd);
}

int fio_ftruncate(int fd, off_t len)
{
	FAIL_IF_PLANNED(FIO_FTRUNCATE);
	return ops()->ftruncate(fd, len);
}

int fio_rename(const char *from, const char *to)
{
	FAIL_IF_PLANNED(FIO_RENAME);
	return ops()->rename(from, to);
}

int fio_close(int fd)
{
	int e = 0;
	if (plan(FIO_CLOSE, &e) != RUN) {
		/* Still release the descriptor: a close that "fails" must not
		 * leak it, exactly like a real close that returns EIO. */
		ops()->close(fd);
		errno = e;
		return -1;
	}
	return ops()->close(fd);
}

int fio_fallocate(int fd, int mode, off_t off, off_t len)
{
	FAIL_IF_PLANNED(FIO_FALLOCATE);
	return ops()->fallocate(fd, mode, off, len);
}

int fio_unlink(const char *path)
{
	FAIL_IF_PLANNED(FIO_UNLINK);
	return ops()->unlink(path);
}

int fio_mkdir(const char *path, mode_t mode)
{
	FAIL_IF_PLANNED(FIO_MKDIR);
	return ops()->mkdir(path, mode);
}

int fio_write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = fio_write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int fio_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = fio_pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int fio_fsync_dir(const char *dir)
{
	int fd = fio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int rc = fio_fsync(fd);
	int saved = errno;
	if (fio_close(fd) != 0 && rc == 0)
		return -1;
	errno = saved;
	return rc;
}
