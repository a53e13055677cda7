/*
 * test_epoch.c - the acceptedEpoch/currentEpoch files: ZooKeeper's text
 * format both ways, the atomic write (temp file, fsync, rename) through the
 * fault seam, and QuorumPeer.loadDataBase's rules for missing files, a
 * leftover currentEpoch.tmp, and epochs that contradict the log.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/datadir.h"
#include "storage/fileio.h"
#include "helpers.h"

static char dir[256];
static char vdir[300];

static void setup(void)
{
	test_dir_make(dir, sizeof dir, "epoch");
	snprintf(vdir, sizeof vdir, "%s/version-2", dir);
	fio_fault_clear();
}

static void teardown(void)
{
	fio_fault_clear();
	test_dir_remove(dir);
}

TestSuite(epoch, .init = setup, .fini = teardown);

static char *vpath(const char *name)
{
	static char p[400];
	snprintf(p, sizeof p, "%s/%s", vdir, name);
	return p;
}

static void put(const char *name, const void *content, size_t len)
{
	mkdir(vdir, 0755);
	FILE *f = fopen(vpath(name), "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(content, 1, len, f), len);
	fclose(f);
}

static char *get(const char *name)
{
	static char buf[128];
	FILE *f = fopen(vpath(name), "rb");
	cr_assert_not_null(f, "%s", name);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int64_t read_ok(const char *name)
{
	int64_t v = -77;
	char err[256];
	cr_assert_eq(datadir_read_epoch(dir, name, &v, err, sizeof err), 0, "%s", err);
	return v;
}

Test(epoch, written_as_zookeeper_writes_it_and_read_back)
{
	int64_t values[] = { 0, 1, 5, 0x7fffffff, 0x100000000LL, INT64_MAX, -1, INT64_MIN };
	char err[256];
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		cr_assert_eq(datadir_write_epoch(dir, DATADIR_CURRENT_EPOCH, values[i], err, sizeof err), 0, "%s", err);
		char want[32];
		snprintf(want, sizeof want, "%lld", (long long)values[i]);
		cr_assert_str_eq(get(DATADIR_CURRENT_EPOCH), want, "Long.toString, no newline");
		cr_assert_eq(read_ok(DATADIR_CURRENT_EPOCH), values[i]);
	}
	cr_assert_neq(access(vpath("currentEpoch.tmp"), F_OK), 0, "no temp file is left behind");
	cr_assert_eq(access(vpath(DATADIR_ACCEPTED_EPOCH), F_OK), -1);
}

Test(epoch, a_missing_file_and_directory_is_not_an_error)
{
	int64_t v = 3;
	char err[256];
	cr_assert_eq(datadir_read_epoch(dir, DATADIR_ACCEPTED_EPOCH, &v, err, sizeof err), 1);
	cr_assert_eq(v, 3, "untouched");
	rmdir(dir);
	cr_assert_eq(datadir_read_epoch(dir, DATADIR_ACCEPTED_EPOCH, &v, err, sizeof err), 1);
	cr_assert_eq(datadir_write_epoch(dir, DATADIR_ACCEPTED_EPOCH, 9, err, sizeof err), 0, "%s", err);
	cr_assert_eq(read_ok(DATADIR_ACCEPTED_EPOCH), 9, "the directories are created");
}

/* BufferedReader.readLine + Long.parseLong: what ZooKeeper accepts. */
Test(epoch, reads_what_zookeeper_reads_and_refuses_the_rest)
{
	static const struct { const char *text; int64_t want; } good[] = {
		{ "7", 7 }, { "7\n", 7 }, { "7\r\n", 7 }, { "7\rjunk", 7 }, { "+7", 7 }, { "-1", -1 },
		{ "0007", 7 }, { "9223372036854775807", INT64_MAX }, { "-9223372036854775808", INT64_MIN },
		{ "12\nsecond line ignored", 12 },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		put(DATADIR_CURRENT_EPOCH, good[i].text, strlen(good[i].text));
		cr_assert_eq(read_ok(DATADIR_CURRENT_EPOCH), good[i].want, "\"%s\"", good[i].text);
	}
	static const char *bad[] = {
		"", "\n", " 7", "7 ", "0x10", "abc", "+", "-", "9223372036854775808", "-9223372036854775809",
		"1e3", "123456789012345678901234567890",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put(DATADIR_CURRENT_EPOCH, bad[i], strlen(bad[i]));
		int64_t v;
		char err[256];
		cr_assert_eq(datadir_read_epoch(dir, DATADIR_CURRENT_EPOCH, &v, err, sizeof err), -1, "\"%s\"", bad[i]);
		cr_assert(strstr(err, "currentEpoch") && strstr(err, "found"), "%s", err);
	}
	char big[5000];
	memset(big, '1', sizeof big);
	put(DATADIR_CURRENT_EPOCH, big, sizeof big);
	int64_t v;
	char err[256];
	cr_assert_eq(datadir_read_epoch(dir, DATADIR_CURRENT_EPOCH, &v, err, sizeof err), -1);
	put(DATADIR_CURRENT_EPOCH, "7\0", 2);
	cr_assert_eq(datadir_read_epoch(dir, DATADIR_CURRENT_EPOCH, &v, err, sizeof err), -1, "a NUL is not a digit");
}

/* Each step of the atomic write fails in turn: the old value survives and
 * no temp file is left, except when only the directory fsync failed (the
 * new value is in place but may not survive a crash: still an error). */
Test(epoch, a_failing_write_keeps_the_old_value)
{
	char err[256];
	cr_assert_eq(datadir_write_epoch(dir, DATADIR_ACCEPTED_EPOCH, 4, err, sizeof err), 0, "%s", err);
	enum fio_op ops[] = { FIO_OPEN, FIO_WRITE, FIO_FSYNC, FIO_CLOSE, FIO_RENAME };
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		struct fio_fault f = { .op = ops[i], .nth = 1, .err = ops[i] == FIO_WRITE ? ENOSPC : EIO };
		cr_assert(fio_fault_add(&f));
		cr_assert_eq(datadir_write_epoch(dir, DATADIR_ACCEPTED_EPOCH, 5, err, sizeof err), -1, "%s",
			     fio_op_name(ops[i]));
		cr_assert(strstr(err, fio_op_name(ops[i])) && strstr(err, "acceptedEpoch"), "%s", err);
		cr_assert_eq(fio_faults_fired(), 1);
		fio_fault_clear();
		cr_assert_eq(read_ok(DATADIR_ACCEPTED_EPOCH), 4, "after a failed %s", fio_op_name(ops[i]));
		cr_assert_neq(access(vpath("acceptedEpoch.tmp"), F_OK), 0, "after a failed %s", fio_op_name(ops[i]));
	}
	/* the directory fsync: fio_fsync_dir is an open + fsync of the directory */
	struct fio_fault f = { .op = FIO_FSYNC, .nth = 2, .err = EIO };
	cr_assert(fio_fault_add(&f));
	cr_assert_eq(datadir_write_epoch(dir, DATADIR_ACCEPTED_EPOCH, 6, err, sizeof err), -1);
	cr_assert(strstr(err, "directory"), "%s", err);
	fio_fault_clear();
	cr_assert_eq(read_ok(DATADIR_ACCEPTED_EPOCH), 6);
	/* every write really goes through the seam, and is fsynced before the rename */
	cr_assert_eq(datadir_write_epoch(dir, DATADIR_ACCEPTED_EPOCH, 7, err, sizeof err), 0, "%s", err);
	cr_assert_eq(fio_calls(FIO_WRITE), 1);
	cr_assert_eq(fio_calls(FIO_RENAME), 1);
	cr_assert_eq(fio_calls(FIO_FSYNC), 2);
}

/* ---- QuorumPeer.loadDataBase -------------------------------------------- */

static int load(int64_t last_zxid, int64_t *cur, int64_t *acc, char *err, size_t errlen)
{
	*cur = *acc = -99;
	return datadir_load_epochs(dir, last_zxid, cur, acc, err, errlen);
}

Test(epoch, missing_files_are_derived_from_the_last_zxid_and_written)
{
	int64_t cur, acc;
	char err[256];
	cr_assert_eq(datadir_zxid_epoch(0x500000003LL), 5);
	cr_assert_eq(load(0x500000003LL, &cur, &acc, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cur, 5);
	cr_assert_eq(acc, 5);
	cr_assert_str_eq(get(DATADIR_CURRENT_EPOCH), "5");
	cr_assert_str_eq(get(DATADIR_ACCEPTED_EPOCH), "5");
	/* a fresh dataDir: epoch 0 */
	test_dir_remove(dir);
	cr_assert_eq(load(0, &cur, &acc, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cur, 0);
	cr_assert_eq(acc, 0);
	cr_assert_str_eq(get(DATADIR_CURRENT_EPOCH), "0");
}

Test(epoch, existing_files_win_over_the_zxid)
{
	int64_t cur, acc;
	char err[256];
	put(DATADIR_CURRENT_EPOCH, "6", 1);
	put(DATADIR_ACCEPTED_EPOCH, "7", 1);
	cr_assert_eq(load(0x500000003LL, &cur, &acc, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cur, 6);
	cr_assert_eq(acc, 7);
	/* only acceptedEpoch missing: derived from the zxid, then checked */
	unlink(vpath(DATADIR_ACCEPTED_EPOCH));
	cr_assert_eq(load(0x600000001LL, &cur, &acc, err, sizeof err), 0, "%s", err);
	cr_assert_eq(acc, 6);
	cr_assert_str_eq(get(DATADIR_ACCEPTED_EPOCH), "6");
}

Test(epoch, a_log_ahead_of_current_epoch_takes_the_leftover_tmp_or_refuses)
{
	int64_t cur, acc;
	char err[256];
	put(DATADIR_CURRENT_EPOCH, "4", 1);
	put(DATADIR_ACCEPTED_EPOCH, "9", 1);
	cr_assert_eq(load(0x500000001LL, &cur, &acc, err, sizeof err), -1);
	cr_assert(strstr(err, "current epoch, 4, is older than the last zxid"), "%s", err);

	put("currentEpoch.tmp", "5", 1);     /* a crash while currentEpoch was being replaced */
	cr_assert_eq(load(0x500000001LL, &cur, &acc, err, sizeof err), 0, "%s", err);
	cr_assert_eq(cur, 5);
	cr_assert_eq(acc, 9);
	cr_assert_str_eq(get(DATADIR_CURRENT_EPOCH), "5", "written back, as setCurrentEpoch does");
	cr_assert_neq(access(vpath("currentEpoch.tmp"), F_OK), 0);

	put(DATADIR_CURRENT_EPOCH, "4", 1);
	put("currentEpoch.tmp", "garbage", 7);
	cr_assert_eq(load(0x500000001LL, &cur, &acc, err, sizeof err), -1);
	cr_assert(strstr(err, "currentEpoch.tmp"), "%s", err);
}

Test(epoch, accepted_below_current_is_refused)
{
	int64_t cur, acc;
	char err[256];
	put(DATADIR_CURRENT_EPOCH, "8", 1);
	put(DATADIR_ACCEPTED_EPOCH, "7", 1);
	cr_assert_eq(load(0x700000001LL, &cur, &acc, err, sizeof err), -1);
	cr_assert(strstr(err, "accepted epoch, 7, is less than the current epoch, 8"), "%s", err);
	put(DATADIR_ACCEPTED_EPOCH, "x", 1);
	cr_assert_eq(load(0x700000001LL, &cur, &acc, err, sizeof err), -1);
	cr_assert(strstr(err, "acceptedEpoch"), "%s", err);
}

Test(epoch, a_failing_default_write_is_reported)
{
	int64_t cur, acc;
	char err[256];
	struct fio_fault f = { .op = FIO_WRITE, .nth = 1, .err = ENOSPC };
	cr_assert(fio_fault_add(&f));
	cr_assert_eq(load(0x100000001LL, &cur, &acc, err, sizeof err), -1);
	cr_assert(strstr(err, "currentEpoch") && strstr(err, "disk is full"), "%s", err);
}
