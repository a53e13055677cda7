/*
 * regress_main.c - runs a fuzz target's LLVMFuzzerTestOneInput on files,
 * without libFuzzer (make fuzz-regress: gcc with ASan + UBSan, so it needs
 * no clang). Each argument is a file or a directory (every regular file in
 * it, in name order). An input that crashes aborts the run with the
 * sanitizer's report and the name of the file (FUZZ_VERBOSE=1 names each
 * file before it runs).
 *
 *   build-asan/fuzz/jute-regress tests/fuzz/corpus/jute tests/fuzz/regress/jute
 */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static const char *current;
static bool verbose;

/* Names the input that crashed (async-signal-safe: write only). */
static void say_current(void)
{
	if (!current)
		return;
	static const char pre[] = "\n*** crashing input: ";
	ssize_t w = write(2, pre, sizeof pre - 1);
	w = write(2, current, strlen(current));
	w = write(2, "\n", 1);
	(void)w;
}

static void on_signal(int sig)
{
	say_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0) {
		perror(path);
		fclose(f);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	/* exactly the input's size, as libFuzzer allocates it */
	uint8_t *data = malloc(size ? size : 1);
	if (!data || (size && fread(data, 1, size, f) != size)) {
		fprintf(stderr, "%s: cannot read\n", path);
		free(data);
		fclose(f);
		return -1;
	}
	fclose(f);
	if (verbose)
		fprintf(stderr, "running %s (%zu bytes)\n", path, size);
	current = path;
	LLVMFuzzerTestOneInput(data, size);
	current = NULL;
	free(data);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, int *count)
{
	DIR *d = opendir(dir);
	if (!d) {
		perror(dir);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **v = realloc(names, cap * sizeof *v);
			if (!v)
				abort();
			names = v;
		}
		size_t len = strlen(dir) + strlen(e->d_name) + 2;
		names[n] = malloc(len);
		if (!names[n])
			abort();
		snprintf(names[n], len, "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, by_name);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
			rc = run_file(names[i]);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(say_current);
	signal(SIGABRT, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	int count = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			return 1;
		}
		int rc;
		if (S_ISDIR(st.st_mode)) {
			rc = run_dir(argv[i], &count);
		} else {
			rc = run_file(argv[i]);
			count++;
		}
		if (rc != 0)
			return 1;
	}
	printf("%s: %d input(s) ran clean\n", argv[0], count);
	return 0;
}
