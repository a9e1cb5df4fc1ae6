/*
 * bench_msg — see bench_msg.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "bench_msg.h"

#define MIN_BODY	3	/* "x" CRLF */

static const char pad_chars[] =
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* Fill body with len bytes of CRLF lines, none starting with a dot. */
static void
fill_body(char *body, size_t len)
{
	size_t left = len, n, i, line = 0, k = sizeof(pad_chars) - 1;

	while (left > 0) {
		n = left - 2 < BENCH_MSG_LINE ? left - 2 : BENCH_MSG_LINE;
		if (left - (n + 2) == 1)
			n--;	/* never leave one byte: it cannot be a line */
		for (i = 0; i < n; i++)
			*body++ = pad_chars[(i + line) % k];
		*body++ = '\r';
		*body++ = '\n';
		left -= n + 2;
		line++;
	}
}

int
bench_msg_init(struct bench_msg *m, size_t size, const char *rcpt,
    const char *run_id)
{
	char probe[BENCH_MSG_HEAD_MAX];

	memset(m, 0, sizeof(*m));
	if (strlcpy(m->run_id, run_id, sizeof(m->run_id)) >=
	    sizeof(m->run_id) ||
	    strlcpy(m->rcpt, rcpt, sizeof(m->rcpt)) >= sizeof(m->rcpt)) {
		errno = EINVAL;
		return -1;
	}
	m->size = size;
	m->head_len = bench_msg_head(m, 0, probe, sizeof(probe));
	if (m->head_len == 0) {
		errno = EINVAL;
		return -1;
	}
	m->body_len = size > m->head_len + MIN_BODY ? size - m->head_len :
	    MIN_BODY;
	if ((m->body = malloc(m->body_len)) == NULL)
		return -1;
	fill_body(m->body, m->body_len);
	return 0;
}

size_t
bench_msg_head(const struct bench_msg *m, unsigned long seq, char *buf,
    size_t bufsz)
{
	int n;

	n = snprintf(buf, bufsz,
	    "To: <%s>\r\n"
	    "Subject: mppbench %s message %010lu\r\n"
	    "X-Bench-Seq: %010lu\r\n"
	    "\r\n", m->rcpt, m->run_id, seq, seq);
	if (n < 0 || (size_t)n >= bufsz)
		return 0;
	return (size_t)n;
}

void
bench_msg_free(struct bench_msg *m)
{
	free(m->body);
	m->body = NULL;
	m->body_len = 0;
}
