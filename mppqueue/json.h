/*
 * json — a small streaming JSON writer for mppq's machine-readable output.
 * The caller opens and closes objects and arrays in order; the writer puts
 * the commas and colons, and escapes strings so the output is valid JSON
 * whatever bytes they hold: quote, backslash and control characters are
 * escaped, valid UTF-8 passes through, each byte of an invalid sequence
 * becomes U+FFFD. Misuse (a key outside an object, unbalanced ends, nesting
 * deeper than JSON_DEPTH_MAX) is remembered and reported by json_finish()
 * (and, for JSON Lines, by json_end_line()).
 */
#ifndef MPP_JSON_H
#define MPP_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;
	int lines;		/* JSON Lines: one value per line */
	int depth;
	int after_key;		/* a key was written, its value is next */
	int error;
	unsigned long count[JSON_DEPTH_MAX];	/* members per level */
	char kind[JSON_DEPTH_MAX];		/* '{' or '[' per level */
};

/* Start a document written to f (which the caller owns). */
void json_init(struct json *j, FILE *f);
/*
 * Start a JSON Lines stream on f: any number of values, each on a line of
 * its own, ended by json_end_line() (so a reader can take one line at a
 * time, and the writer holds nothing but the current value).
 */
void json_init_lines(struct json *j, FILE *f);
/*
 * End the value of the current line with a newline. 0, or -1 when it was
 * not one whole value or writing failed; the next line starts clean.
 */
int json_end_line(struct json *j);

void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);

/* The name of the next member of the current object. */
void json_key(struct json *j, const char *key);

/* A string value; NULL writes null. */
void json_string(struct json *j, const char *s);
/* A string value of len bytes (may hold any byte, NUL included). */
void json_string_n(struct json *j, const char *s, size_t len);
void json_int(struct json *j, long long v);
void json_bool(struct json *j, int v);
void json_null(struct json *j);

/*
 * End the document with a newline (a JSON Lines stream: its last line is
 * already ended) and flush. 0 when the document is complete and every
 * write succeeded, -1 otherwise.
 */
int json_finish(struct json *j);

/*
 * Write s (len bytes) to f as a quoted JSON string, escaped as above.
 * Exported for the tests and for callers without a document.
 */
void json_write_string(FILE *f, const char *s, size_t len);

#endif
