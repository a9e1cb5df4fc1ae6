/*
 * text — the reader of an MPP message text (after 354). It removes the
 * transparency dot (RFC 5321 §4.5.2), turns CRLF into LF, finds the end
 * marker CRLF.CRLF, and notes what makes a text unacceptable: a bare CR or
 * LF, a NUL. It does no I/O and no allocation: bytes in, spans out.
 */
#ifndef MPP_TEXT_H
#define MPP_TEXT_H

#include <stddef.h>

enum text_pos {
	TP_BOL,		/* at the start of a line */
	TP_BOL_DOT,	/* a '.' at the start of a line */
	TP_BOL_DOT_CR,	/* ".\r" at the start of a line */
	TP_MID,		/* inside a line */
	TP_CR,		/* a CR inside a line, LF not yet seen */
	TP_DONE		/* the end marker was read */
};

struct text_reader {
	enum text_pos pos;
	int bare_crlf;		/* a CR without LF, or an LF without CR */
	int nul;		/* a NUL byte */
	unsigned long long bytes;	/* bytes emitted (unstuffed, LF ends) */
};

/* Receives each span of unstuffed text; return -1 to stop early. */
typedef int (*text_emit_fn)(void *ctx, const char *data, size_t len);

void text_init(struct text_reader *t);

/*
 * Read in[0..len): emit the unstuffed text and return how many bytes were
 * consumed. Fewer than len only when the end marker was reached (then
 * t->pos == TP_DONE and the rest belongs to the next command) or emit
 * returned -1 (then -1 is returned).
 */
long text_feed(struct text_reader *t, const char *in, size_t len,
    text_emit_fn emit, void *ctx);

#endif
