/*
 * Unit tests for mppqueue/json: documents built call by call and compared
 * with the exact text expected; string escaping as a table (ASCII, control
 * characters, well-formed and ill-formed UTF-8); misuse reported by
 * json_finish(); JSON Lines streams, one value per line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../mppqueue/json.h"

/* A memory stream a document is written to. */
struct out {
	char *buf;
	size_t len;
	FILE *f;
};

static void
out_open(struct out *o)
{
	o->buf = NULL;
	o->len = 0;
	assert_non_null(o->f = open_memstream(&o->buf, &o->len));
}

/* Close the stream and compare its text with want. */
static void
out_check(struct out *o, const char *want)
{
	assert_int_equal(fclose(o->f), 0);
	assert_string_equal(o->buf, want);
	free(o->buf);
}

static void
test_scalars(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	json_begin_array(&j);
	json_int(&j, 0);
	json_int(&j, -42);
	json_int(&j, 9007199254740993LL);
	json_bool(&j, 1);
	json_bool(&j, 0);
	json_null(&j);
	json_string(&j, NULL);
	json_string(&j, "");
	json_end_array(&j);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "[0,-42,9007199254740993,true,false,null,null,\"\"]\n");
}

static void
test_empty_containers(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	json_begin_object(&j);
	json_key(&j, "a");
	json_begin_array(&j);
	json_end_array(&j);
	json_key(&j, "o");
	json_begin_object(&j);
	json_end_object(&j);
	json_end_object(&j);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "{\"a\":[],\"o\":{}}\n");
}

static void
test_nested(void **state)
{
	struct out o;
	struct json j;
	int i;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	json_begin_array(&j);
	for (i = 0; i < 2; i++) {
		json_begin_object(&j);
		json_key(&j, "id");
		json_int(&j, i);
		json_key(&j, "to");
		json_begin_array(&j);
		json_string(&j, "a@x");
		json_string(&j, "b@y");
		json_end_array(&j);
		json_key(&j, "err");
		json_null(&j);
		json_end_object(&j);
	}
	json_end_array(&j);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "[{\"id\":0,\"to\":[\"a@x\",\"b@y\"],\"err\":null},"
	    "{\"id\":1,\"to\":[\"a@x\",\"b@y\"],\"err\":null}]\n");
}

/* Input bytes (with their length, NUL allowed) and the JSON expected. */
static const struct {
	const char *in;
	size_t len;
	const char *want;
} escapes[] = {
#define E(in, want) { in, sizeof(in) - 1, want }
	E("plain", "\"plain\""),
	E("say \"hi\"", "\"say \\\"hi\\\"\""),
	E("back\\slash", "\"back\\\\slash\""),
	E("/", "\"/\""),
	E("a\nb\tc\rd", "\"a\\u000ab\\u0009c\\u000dd\""),
	E("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""),
	E("nul\0here", "\"nul\\u0000here\""),
	E("\x1b[31m", "\"\\u001b[31m\""),
	/* Well-formed UTF-8 of 2, 3 and 4 bytes, and the extremes. */
	E("caf\xc3\xa9", "\"caf\xc3\xa9\""),
	E("\xe2\x82\xac", "\"\xe2\x82\xac\""),
	E("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""),
	E("\xc2\x80", "\"\xc2\x80\""),
	E("\xef\xbf\xbf", "\"\xef\xbf\xbf\""),
	E("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""),
	E("\xed\x9f\xbf", "\"\xed\x9f\xbf\""),
	/* Ill-formed: each byte that starts no valid sequence is U+FFFD. */
	E("\x80", "\"\\ufffd\""),
	E("\xff", "\"\\ufffd\""),
	E("\xc0\xaf", "\"\\ufffd\\ufffd\""),		/* overlong '/' */
	E("\xc1\xbf", "\"\\ufffd\\ufffd\""),
	E("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""),	/* overlong */
	E("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""),	/* surrogate */
	E("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""),
	E("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""),
	E("\xe2\x82", "\"\\ufffd\\ufffd\""),		/* cut short */
	E("\xe2\x82x", "\"\\ufffd\\ufffdx\""),
	E("\xc3" "a\xc3\xa9", "\"\\ufffda\xc3\xa9\""),
	E("latin1 \xe9t\xe9", "\"latin1 \\ufffdt\\ufffd\""),
#undef E
};

static void
test_escape_table(void **state)
{
	struct out o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		out_open(&o);
		json_write_string(o.f, escapes[i].in, escapes[i].len);
		out_check(&o, escapes[i].want);
	}
}

/* json_string stops at NUL; json_string_n writes every byte. */
static void
test_string_n(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	json_begin_array(&j);
	json_string(&j, "a\0b");
	json_string_n(&j, "a\0b", 3);
	json_end_array(&j);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "[\"a\",\"a\\u0000b\"]\n");
}

/* Keys are escaped like values. */
static void
test_key_escape(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	json_begin_object(&j);
	json_key(&j, "k\"\n");
	json_int(&j, 1);
	json_end_object(&j);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "{\"k\\\"\\u000a\":1}\n");
}

/* Each misuse leaves the document marked bad. */
static void
misuse_key_in_array(struct json *j)
{
	json_begin_array(j);
	json_key(j, "k");
	json_int(j, 1);
	json_end_array(j);
}

static void
misuse_value_without_key(struct json *j)
{
	json_begin_object(j);
	json_int(j, 1);
	json_end_object(j);
}

static void
misuse_unclosed(struct json *j)
{
	json_begin_object(j);
	json_key(j, "k");
	json_begin_array(j);
	json_end_array(j);
}

static void
misuse_wrong_close(struct json *j)
{
	json_begin_object(j);
	json_end_array(j);
}

static void
misuse_two_documents(struct json *j)
{
	json_int(j, 1);
	json_int(j, 2);
}

static void
misuse_key_without_value(struct json *j)
{
	json_begin_object(j);
	json_key(j, "k");
	json_end_object(j);
}

static void
misuse_too_deep(struct json *j)
{
	int i;

	for (i = 0; i < JSON_DEPTH_MAX + 1; i++)
		json_begin_array(j);
	for (i = 0; i < JSON_DEPTH_MAX + 1; i++)
		json_end_array(j);
}

static void
misuse_empty(struct json *j)
{
	(void)j;
}

static void
misuse_extra_close(struct json *j)
{
	json_begin_array(j);
	json_end_array(j);
	json_end_array(j);
}

static void
test_misuse(void **state)
{
	void (*cases[])(struct json *) = { misuse_key_in_array,
	    misuse_value_without_key, misuse_unclosed, misuse_wrong_close,
	    misuse_two_documents, misuse_key_without_value, misuse_too_deep,
	    misuse_empty, misuse_extra_close };
	struct out o;
	struct json j;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out_open(&o);
		json_init(&j, o.f);
		cases[i](&j);
		assert_int_equal(json_finish(&j), -1);
		fclose(o.f);
		free(o.buf);
	}
}

/* Nesting up to the limit is fine. */
static void
test_deep_ok(void **state)
{
	struct out o;
	struct json j;
	int i;

	(void)state;
	out_open(&o);
	json_init(&j, o.f);
	for (i = 0; i < JSON_DEPTH_MAX - 1; i++)
		json_begin_array(&j);
	for (i = 0; i < JSON_DEPTH_MAX - 1; i++)
		json_end_array(&j);
	assert_int_equal(json_finish(&j), 0);
	fclose(o.f);
	free(o.buf);
}

/* JSON Lines: each value on its own line, nothing else around them. */
static void
test_lines(void **state)
{
	struct out o;
	struct json j;
	int i;

	(void)state;
	out_open(&o);
	json_init_lines(&j, o.f);
	for (i = 0; i < 3; i++) {
		json_begin_object(&j);
		json_key(&j, "n");
		json_int(&j, i);
		json_key(&j, "s");
		json_string(&j, "a\nb");
		json_end_object(&j);
		assert_int_equal(json_end_line(&j), 0);
	}
	json_string(&j, "last");
	assert_int_equal(json_end_line(&j), 0);
	assert_int_equal(json_finish(&j), 0);
	/* A newline inside a string is escaped: it never ends a line. */
	out_check(&o, "{\"n\":0,\"s\":\"a\\u000ab\"}\n"
	    "{\"n\":1,\"s\":\"a\\u000ab\"}\n"
	    "{\"n\":2,\"s\":\"a\\u000ab\"}\n\"last\"\n");
}

/* No values: no output at all, and still a complete stream. */
static void
test_lines_empty(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init_lines(&j, o.f);
	assert_int_equal(json_finish(&j), 0);
	out_check(&o, "");
}

/* A line that is not one whole value is an error, and so is the stream;
   the next line starts clean. */
static void
test_lines_misuse(void **state)
{
	struct out o;
	struct json j;

	(void)state;
	out_open(&o);
	json_init_lines(&j, o.f);
	json_begin_array(&j);
	assert_int_equal(json_end_line(&j), -1);
	json_int(&j, 1);
	assert_int_equal(json_end_line(&j), 0);
	json_int(&j, 2);
	json_int(&j, 3);
	assert_int_equal(json_end_line(&j), -1);
	assert_int_equal(json_end_line(&j), -1);	/* empty line */
	json_int(&j, 4);			/* value left open at the end */
	assert_int_equal(json_finish(&j), -1);
	out_check(&o, "[\n1\n23\n\n4");
	/* A document writer has no lines. */
	out_open(&o);
	json_init(&j, o.f);
	json_int(&j, 5);
	assert_int_equal(json_end_line(&j), -1);
	assert_int_equal(fclose(o.f), 0);
	free(o.buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_empty_containers),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_string_n),
		cmocka_unit_test(test_key_escape),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_deep_ok),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_lines_empty),
		cmocka_unit_test(test_lines_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
