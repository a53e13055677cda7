/*
 * datadir.c - listing and naming the files of a ZooKeeper version-2 dir.
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

#include "fileio.h"

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
