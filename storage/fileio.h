/*
 * fileio.h - the storage code's only way to change files: a seam for fault
 * injection (the idea of SQLite's VFS, much smaller).
 *
 * Every open, write, pwrite, fdatasync, fsync, ftruncate, rename, close,
 * fallocate, unlink and mkdir that storage/ does goes through fio_*(), which
 * calls the current table of function pointers (the real syscalls unless a
 * test installs its own) after consulting the fault plan. A test can say
 * "the 3rd fdatasync from now fails with EIO" or "the 2nd write from now
 * writes half its bytes, and every write after that fails with ENOSPC", and
 * then check that the txn log or the snapshot writer reports the failure
 * instead of success. Reads (open O_RDONLY + mmap) are not faults we model:
 * a failed read is caught by the checksums anyway.
 *
 * Every fio_*() returns what the syscall returns and sets errno the same way.
 * Counters and the plan are global (tests run one plan at a time); they are
 * atomics so the seam itself is safe to call from any thread.
 */
#ifndef ZKD_STORAGE_FILEIO_H
#define ZKD_STORAGE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum fio_op {
	FIO_OPEN, FIO_WRITE, FIO_PWRITE, FIO_FDATASYNC, FIO_FSYNC, FIO_FTRUNCATE,
	FIO_RENAME, FIO_CLOSE, FIO_FALLOCATE, FIO_UNLINK, FIO_MKDIR,
	FIO_NOPS
};

struct fio_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	ssize_t (*write)(int fd, const void *buf, size_t n);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*rename)(const char *from, const char *to);
	int (*close)(int fd);
	int (*fallocate)(int fd, int mode, off_t off, off_t len);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
};

/* Replaces the table (NULL restores the real syscalls). */
void fio_set_ops(const struct fio_ops *ops);
const struct fio_ops *fio_real_ops(void);

/* One planned fault: the nth call of `op` counted from when the plan was
 * installed (1 = the very next call) fails with errno `err` instead of
 * running. sticky: every later call of op fails too (a full disk, a dead
 * device). partial (write/pwrite only): the nth call really writes half its
 * bytes and returns that short count, and every later call fails with err
 * (what a disk filling up mid-write looks like). */
struct fio_fault {
	enum fio_op op;
	long nth;
	int err;
	bool sticky;
	bool partial;
};

#define FIO_MAX_FAULTS 8
/* Adds a fault to the plan and zeroes that op's counter; false when full. */
bool fio_fault_add(const struct fio_fault *f);
/* Removes every fault and zeroes every counter. */
void fio_fault_clear(void);
/* Calls of op since the last fio_fault_clear (or since that op's counter was
 * zeroed by fio_fault_add). */
long fio_calls(enum fio_op op);
/* Faults that fired since the last clear. */
long fio_faults_fired(void);
const char *fio_op_name(enum fio_op op);

int fio_open(const char *path, int flags, mode_t mode);
ssize_t fio_write(int fd, const void *buf, size_t n);
ssize_t fio_pwrite(int fd, const void *buf, size_t n, off_t off);
int fio_fdatasync(int fd);
int fio_fsync(int fd);
int fio_ftruncate(int fd, off_t len);
int fio_rename(const char *from, const char *to);
int fio_close(int fd);
int fio_fallocate(int fd, int mode, off_t off, off_t len);
int fio_unlink(const char *path);
int fio_mkdir(const char *path, mode_t mode);

/* Loops over short writes and EINTR until all n bytes are written: 0, or -1
 * with errno (a write that returns 0 counts as EIO, so it cannot spin). */
int fio_write_all(int fd, const void *buf, size_t n);
int fio_pwrite_all(int fd, const void *buf, size_t n, off_t off);
/* Opens dir read-only and fsyncs it, which makes the names created, renamed
 * or removed in it durable. 0 or -1 with errno. */
int fio_fsync_dir(const char *dir);

#endif
