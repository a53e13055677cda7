/*
 * datadir.c - listing and naming the files of a ZooKeeper version-2 dir,
 * and the two epoch files that live there (see datadir.h).
 */
#include "datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "net/log.h"

char *datadir_path(const char *vdir, const char *name)
{
	size_t a = strlen(vdir), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (!p)
		abort();
	memcpy(p, vdir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

void datadir_name(char *buf, size_t len, const char *prefix, int64_t zxid)
{
	snprintf(buf, len, "%s.%" PRIx64, prefix, (uint64_t)zxid);
}

/* mkdir that treats "already there" as success and makes a new name durable
 * by fsyncing the parent. */
static int make_dir(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		snprintf(err, errlen, "%s exists and is not a directory", path);
		return -1;
	}
	if (fio_mkdir(path, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	char *parent = strdup(path);
	if (!parent)
		abort();
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(parent, ".");
	int rc = fio_fsync_dir(parent);
	if (rc != 0)
		snprintf(err, errlen, "cannot fsync directory %s: %s", parent, strerror(errno));
	free(parent);
	return rc;
}

char *datadir_version_dir(const char *dir, bool create, char *err, size_t errlen)
{
	char *v = datadir_path(dir, DATADIR_VERSION);
	if (create && (make_dir(dir, err, errlen) != 0 || make_dir(v, err, errlen) != 0)) {
		free(v);
		return NULL;
	}
	return v;
}

/* ZooKeeper parses the zxid with Long.parseLong(s, 16): at most 16 hex digits
 * and no more than Long.MAX_VALUE. Returns the length of the hex run or 0. */
static size_t parse_hex_zxid(const char *s, int64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; s[i]; i++) {
		int d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		if (i == 16)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	if (i == 0 || v > INT64_MAX)
		return 0;
	*out = (int64_t)v;
	return i;
}

static int cmp_asc(const void *a, const void *b)
{
	int64_t x = ((const struct dd_file *)a)->zxid, y = ((const struct dd_file *)b)->zxid;
	return x < y ? -1 : x > y;
}

static int cmp_desc(const void *a, const void *b) { return cmp_asc(b, a); }

int datadir_list(const char *vdir, const char *prefix, bool ascending, struct dd_file **out,
		 char *err, size_t errlen)
{
	*out = NULL;
	DIR *d = opendir(vdir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot list %s: %s", vdir, strerror(errno));
		return -1;
	}
	size_t plen = strlen(prefix), n = 0, cap = 0;
	struct dd_file *v = NULL;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (strncmp(name, prefix, plen) != 0 || name[plen] != '.' ||
		    strlen(name) >= DATADIR_NAME_MAX)
			continue;
		int64_t zxid;
		size_t hex = parse_hex_zxid(name + plen + 1, &zxid);
		if (!hex)
			continue;
		const char *suffix = name + plen + 1 + hex;
		/* only snapshots come compressed (SnapStream) */
		if (*suffix && (strcmp(prefix, "snapshot") != 0 ||
				(strcmp(suffix, ".gz") != 0 && strcmp(suffix, ".snappy") != 0)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = realloc(v, cap * sizeof *v);
			if (!v)
				abort();
		}
		v[n].zxid = zxid;
		memcpy(v[n].name, name, strlen(name) + 1);   /* length checked above */
		size_t sl = strlen(suffix);
		if (sl >= sizeof v[n].suffix)
			continue;
		memcpy(v[n].suffix, suffix, sl + 1);
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, ascending ? cmp_asc : cmp_desc);
	*out = v;
	return (int)n;
}

/* ---- the epoch files ----------------------------------------------------- */

/* Long.parseLong: an optional sign, then decimal digits, within range. */
static bool parse_java_long(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return false;
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* The longest first line worth reading: any longer is not a long anyway. */
#define EPOCH_LINE_MAX 64

int datadir_read_epoch(const char *data_dir, const char *name, int64_t *out, char *err, size_t errlen)
{
	char *vdir = datadir_path(data_dir, DATADIR_VERSION);
	char *path = datadir_path(vdir, name);
	free(vdir);
	int rc = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			rc = 1;
		else
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	char buf[EPOCH_LINE_MAX + 1];
	size_t got = 0;
	while (got < sizeof buf) {
		ssize_t r = read(fd, buf + got, sizeof buf - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	/* BufferedReader.readLine: the line ends at \n, \r or the end */
	size_t line = 0;
	while (line < got && buf[line] != '\n' && buf[line] != '\r')
		line++;
	if (line > EPOCH_LINE_MAX || !parse_java_long(buf, line, out)) {
		snprintf(err, errlen, "%s: found \"%.*s\"%s where an epoch number should be", path,
			 (int)(line > 30 ? 30 : line), buf, line > 30 ? "..." : "");
		goto out;
	}
	rc = 0;
out:
	close(fd);
	free(path);
	return rc;
}

int datadir_write_epoch(const char *data_dir, const char *name, int64_t value, char *err, size_t errlen)
{
	char *vdir = datadir_version_dir(data_dir, true, err, errlen);
	if (!vdir)
		return -1;
	char tmpname[DATADIR_NAME_MAX];
	snprintf(tmpname, sizeof tmpname, "%s%s", name, DATADIR_EPOCH_TMP);
	char *path = datadir_path(vdir, name), *tmp = datadir_path(vdir, tmpname);
	char text[24];
	int n = snprintf(text, sizeof text, "%" PRId64, value);
	const char *what = "open";
	bool renamed = false;
	int fd = fio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	what = "write";
	if (fio_write_all(fd, text, (size_t)n) != 0)
		goto fail;
	what = "fsync";
	if (fio_fsync(fd) != 0)
		goto fail;
	what = "close";
	int cfd = fd;
	fd = -1;
	if (fio_close(cfd) != 0)
		goto fail;
	what = "rename";
	if (fio_rename(tmp, path) != 0)
		goto fail;
	renamed = true;
	what = "fsync of the directory";
	if (fio_fsync_dir(vdir) != 0)
		goto fail;
	free(path);
	free(tmp);
	free(vdir);
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "cannot write %s = %" PRId64 ": %s of %s failed: %s%s", name, value, what,
		 renamed ? vdir : tmp, strerror(e), e == ENOSPC ? " (the dataDir disk is full)" : "");
	if (fd >= 0)
		fio_close(fd);
	if (!renamed)
		fio_unlink(tmp);        /* as AtomicFileOutputStream does: the old value stays */
	free(path);
	free(tmp);
	free(vdir);
	return -1;
}

/* Reads name, or derives it from the last zxid and writes it when missing. */
static int epoch_or_default(const char *data_dir, const char *name, int64_t last_zxid, int64_t *out, char *err,
			    size_t errlen)
{
	int r = datadir_read_epoch(data_dir, name, out, err, errlen);
	if (r != 1)
		return r;
	*out = datadir_zxid_epoch(last_zxid);
	log_info("%s not found: creating it with the epoch of the last zxid, %" PRId64 " (expected only on a new "
		 "dataDir or one from before the file existed)", name, *out);
	return datadir_write_epoch(data_dir, name, *out, err, errlen);
}

int datadir_load_epochs(const char *data_dir, int64_t last_zxid, int64_t *current, int64_t *accepted, char *err,
			size_t errlen)
{
	int64_t zepoch = datadir_zxid_epoch(last_zxid);
	if (epoch_or_default(data_dir, DATADIR_CURRENT_EPOCH, last_zxid, current, err, errlen) != 0)
		return -1;
	if (zepoch > *current) {
		/* The log got ahead of currentEpoch: a crash while currentEpoch
		 * was being replaced leaves its .tmp, which ZooKeeper trusts. */
		int64_t tmp;
		int r = datadir_read_epoch(data_dir, DATADIR_CURRENT_EPOCH DATADIR_EPOCH_TMP, &tmp, err, errlen);
		if (r < 0)
			return -1;
		if (r == 1) {
			snprintf(err, errlen, "the current epoch, %" PRId64 ", is older than the last zxid, 0x%" PRIx64
				 " (epoch %" PRId64 "): refusing to start, as ZooKeeper does", *current,
				 (uint64_t)last_zxid, zepoch);
			return -1;
		}
		log_info("%s%s found: setting the current epoch to %" PRId64, DATADIR_CURRENT_EPOCH, DATADIR_EPOCH_TMP,
			 tmp);
		if (datadir_write_epoch(data_dir, DATADIR_CURRENT_EPOCH, tmp, err, errlen) != 0)
			return -1;
		*current = tmp;
	}
	if (epoch_or_default(data_dir, DATADIR_ACCEPTED_EPOCH, last_zxid, accepted, err, errlen) != 0)
		return -1;
	if (*accepted < *current) {
		snprintf(err, errlen, "the accepted epoch, %" PRId64 ", is less than the current epoch, %" PRId64
			 ": refusing to start, as ZooKeeper does", *accepted, *current);
		return -1;
	}
	return 0;
}
