/*
 * bench_msg — the message texts mppbench posts.
 *
 * Every text is unique: its Subject and an X-Bench-Seq field carry the run
 * id and a sequence number. The header block of every message has the same
 * length (the number is zero-padded), so one shared body, padded once, makes
 * every text exactly the requested size in wire form (CRLF line ends, as
 * sent after DATA). No line starts with ".", so the text needs no stuffing
 * and can be sent as it is.
 */
#ifndef BENCH_MSG_H
#define BENCH_MSG_H

#include <stddef.h>

#define BENCH_MSG_HEAD_MAX	512	/* bytes of one header block */
#define BENCH_MSG_LINE		78	/* body line length without CRLF */

struct bench_msg {
	char run_id[32];
	char rcpt[256];
	size_t size;		/* requested text size, wire form */
	size_t head_len;	/* every header block's length */
	char *body;		/* shared body, CRLF lines; owned */
	size_t body_len;
};

/*
 * Prepare texts of size bytes (wire form, headers included) to rcpt, tagged
 * with run_id. 0, or -1 (ENOMEM, or a name too long: EINVAL).
 */
int bench_msg_init(struct bench_msg *m, size_t size, const char *rcpt,
    const char *run_id);

/* Write message seq's header block (with its empty line) into buf; its length. */
size_t bench_msg_head(const struct bench_msg *m, unsigned long seq,
    char *buf, size_t bufsz);

/* Free the body (m may be zeroed or freed twice). */
void bench_msg_free(struct bench_msg *m);

#endif /* BENCH_MSG_H */
