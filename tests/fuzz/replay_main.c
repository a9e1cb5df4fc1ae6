/*
 * replay_main — run a libFuzzer target over saved inputs, without libFuzzer.
 *
 * Linked with each tests/fuzz/fuzz_*.c so that make test replays every
 * corpus with any compiler: each argument is a file, or a directory whose
 * regular files are replayed in name order (one level, subdirectories are
 * skipped). A crash is the target's to report (abort, sanitizer); this
 * program only fails when it cannot read its input, or when a directory
 * holds nothing, which is most often a mistyped path.
 *
 * usage: replay [-v] file-or-dir...     (-v names each input first)
 */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;

/*
 * Read path whole into a buffer of exactly its size, as libFuzzer hands
 * inputs over, so a sanitizer sees a read of the byte after the input.
 * The caller frees *data.
 */
static int
read_file(const char *path, uint8_t **data, size_t *size)
{
	FILE *fp;
	long n;
	int saved;

	if ((fp = fopen(path, "rb")) == NULL)
		return -1;
	if (fseek(fp, 0, SEEK_END) == -1 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) == -1)
		goto fail;
	/* malloc(0) may return NULL, which is no error here. */
	if ((*data = malloc(n > 0 ? (size_t)n : 1)) == NULL)
		goto fail;
	if (fread(*data, 1, (size_t)n, fp) != (size_t)n) {
		free(*data);
		goto fail;
	}
	*size = (size_t)n;
	fclose(fp);
	return 0;
fail:
	saved = errno != 0 ? errno : EIO;	/* a short read sets none */
	fclose(fp);
	errno = saved;
	return -1;
}

/* Run the target on one file. */
static int
replay_file(const char *path)
{
	uint8_t *data;
	size_t size;

	errno = 0;
	if (read_file(path, &data, &size) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int
is_regular(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Replay dir/name if it is a regular file: 1 if it was, 0 if skipped,
 * -1 on error. Dot files are skipped (editors' and libFuzzer's own).
 */
static int
replay_entry(const char *dir, const char *name)
{
	char path[4096];
	int n;

	if (name[0] == '.')
		return 0;
	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "replay: %s/%s: path too long\n", dir, name);
		return -1;
	}
	if (!is_regular(path))
		return 0;
	return replay_file(path) == -1 ? -1 : 1;
}

/* Run the target on every regular file in dir, in name order; *n counts. */
static int
replay_dir(const char *dir, size_t *n)
{
	struct dirent **ents;
	size_t found = 0;
	int i, count, r = 0;

	if ((count = scandir(dir, &ents, NULL, alphasort)) == -1) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < count; i++) {
		if (r != -1 && (r = replay_entry(dir, ents[i]->d_name)) == 1)
			found++;
		free(ents[i]);
	}
	free(ents);
	*n += found;
	if (r == -1)
		return -1;
	if (found == 0) {
		fprintf(stderr, "replay: %s: no inputs\n", dir);
		return -1;
	}
	return 0;
}

/* Replay one argument, a file or a directory. */
static int
replay_arg(const char *arg, size_t *n)
{
	struct stat st;

	if (stat(arg, &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", arg, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(arg, n);
	(*n)++;
	return replay_file(arg);
}

int
main(int argc, char *argv[])
{
	size_t n = 0;
	int i = 1, rc = 0;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [-v] file-or-dir...\n", argv[0]);
		return 1;
	}
	for (; i < argc; i++)
		if (replay_arg(argv[i], &n) == -1)
			rc = 1;
	printf("replayed %zu inputs\n", n);
	return rc;
}
