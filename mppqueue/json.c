/*
 * json — see json.h. Strings from the index hold whatever a client or an
 * MTA sent (addresses, SMTP replies), so escaping must make any byte
 * sequence into valid JSON rather than trust it to be UTF-8.
 */
#include <string.h>

#include "json.h"

/*
 * The well-formed UTF-8 sequences (Unicode, table 3-7): by lead byte, the
 * length and the range of the second byte; later bytes are 80..BF. The
 * narrowed ranges exclude overlong forms, surrogates and code points past
 * U+10FFFF.
 */
static const struct {
	unsigned char first, last, len, lo, hi;
} utf8_leads[] = {
	{ 0xc2, 0xdf, 2, 0x80, 0xbf },
	{ 0xe0, 0xe0, 3, 0xa0, 0xbf },
	{ 0xe1, 0xec, 3, 0x80, 0xbf },
	{ 0xed, 0xed, 3, 0x80, 0x9f },
	{ 0xee, 0xef, 3, 0x80, 0xbf },
	{ 0xf0, 0xf0, 4, 0x90, 0xbf },
	{ 0xf1, 0xf3, 4, 0x80, 0xbf },
	{ 0xf4, 0xf4, 4, 0x80, 0x8f },
};

/* Length of the well-formed multi-byte sequence at s (n bytes left), or 0. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t i, k;

	for (i = 0; i < sizeof(utf8_leads) / sizeof(utf8_leads[0]); i++) {
		if (s[0] < utf8_leads[i].first || s[0] > utf8_leads[i].last)
			continue;
		if (n < utf8_leads[i].len || s[1] < utf8_leads[i].lo ||
		    s[1] > utf8_leads[i].hi)
			return 0;
		for (k = 2; k < utf8_leads[i].len; k++)
			if (s[k] < 0x80 || s[k] > 0xbf)
				return 0;
		return utf8_leads[i].len;
	}
	return 0;
}

/* One ASCII byte, escaped when JSON or a terminal needs it. */
static void
write_ascii(FILE *f, unsigned char c)
{
	if (c == '"' || c == '\\') {
		putc('\\', f);
		putc(c, f);
	} else if (c < 0x20 || c == 0x7f)
		fprintf(f, "\\u%04x", c);
	else
		putc(c, f);
}

/* Bytes from s that go out as they are: printable ASCII but " and \. */
static size_t
plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' &&
	    s[i] != '\\')
		i++;
	return i;
}

/* Runs of plain bytes in one fwrite each: a listing of a large queue
   writes millions of strings, and a call per byte was most of its time. */
void
json_write_string(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	putc('"', f);
	while (i < len) {
		if ((n = plain_run(p + i, len - i)) > 0) {
			fwrite(p + i, 1, n, f);
			i += n;
		} else if (p[i] < 0x80) {
			write_ascii(f, p[i++]);
		} else if ((n = utf8_seq_len(p + i, len - i)) == 0) {
			fputs("\\ufffd", f);
			i++;
		} else {
			fwrite(p + i, 1, n, f);
			i += n;
		}
	}
	putc('"', f);
}

void
json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/*
 * Before a value or a key: the comma that separates it from the previous
 * member. A value right after its key needs none. At the top level only
 * one value is allowed.
 */
static void
json_sep(struct json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth == 0) {
		if (j->count[0]++ > 0)
			j->error = 1;
		return;
	}
	if (j->kind[j->depth] == '{') {
		j->error = 1;	/* a value in an object needs a key */
		return;
	}
	if (j->count[j->depth]++ > 0)
		putc(',', j->f);
}

static void
json_open(struct json *j, char kind)
{
	json_sep(j);
	if (j->depth + 1 >= JSON_DEPTH_MAX) {
		j->error = 1;
		return;
	}
	j->depth++;
	j->kind[j->depth] = kind;
	j->count[j->depth] = 0;
	putc(kind, j->f);
}

static void
json_close(struct json *j, char kind)
{
	if (j->depth == 0 || j->kind[j->depth] != kind || j->after_key) {
		j->error = 1;
		return;
	}
	j->depth--;
	putc(kind == '{' ? '}' : ']', j->f);
}

void
json_begin_object(struct json *j)
{
	json_open(j, '{');
}

void
json_end_object(struct json *j)
{
	json_close(j, '{');
}

void
json_begin_array(struct json *j)
{
	json_open(j, '[');
}

void
json_end_array(struct json *j)
{
	json_close(j, '[');
}

void
json_key(struct json *j, const char *key)
{
	if (j->depth == 0 || j->kind[j->depth] != '{' || j->after_key) {
		j->error = 1;
		return;
	}
	if (j->count[j->depth]++ > 0)
		putc(',', j->f);
	json_write_string(j->f, key, strlen(key));
	putc(':', j->f);
	j->after_key = 1;
}

void
json_string_n(struct json *j, const char *s, size_t len)
{
	json_sep(j);
	json_write_string(j->f, s, len);
}

void
json_string(struct json *j, const char *s)
{
	if (s == NULL)
		json_null(j);
	else
		json_string_n(j, s, strlen(s));
}

void
json_int(struct json *j, long long v)
{
	json_sep(j);
	fprintf(j->f, "%lld", v);
}

void
json_bool(struct json *j, int v)
{
	json_sep(j);
	fputs(v ? "true" : "false", j->f);
}

void
json_null(struct json *j)
{
	json_sep(j);
	fputs("null", j->f);
}

void
json_init_lines(struct json *j, FILE *f)
{
	json_init(j, f);
	j->lines = 1;
}

int
json_end_line(struct json *j)
{
	int bad = !j->lines || j->depth != 0 || j->after_key ||
	    j->count[0] != 1;

	putc('\n', j->f);
	if (bad) {
		j->error = 1;
		j->depth = 0;
		j->after_key = 0;
	}
	j->count[0] = 0;
	return bad || ferror(j->f) ? -1 : 0;
}

int
json_finish(struct json *j)
{
	if (!j->lines)
		putc('\n', j->f);
	if (j->depth != 0 || j->after_key ||
	    j->count[0] != (j->lines ? 0 : 1))
		j->error = 1;
	if (fflush(j->f) == EOF || ferror(j->f))
		j->error = 1;
	return j->error ? -1 : 0;
}
