/*
 * dotstuff — message text to its wire form in SMTP (RFC 5321 §4.5.2) and
 * MPP (RFC 1204 §2.3, as RFC 821): every line ends in CRLF, a line that
 * starts with '.' gets one more, and "." CRLF follows the last line.
 *
 * The text comes in chunks of any size and goes into the caller's output
 * buffer; the state between chunks is in struct dotstuff, so a message of
 * any size streams through fixed buffers, and the wire form does not
 * depend on where the chunks were cut.
 *
 * LF and CRLF end a line. A CR is held until the next byte shows whether
 * it is half of a CRLF (a CRLF split between two chunks is still one line
 * end). A CR alone is, by the caller's choice:
 *  - DOTSTUFF_CR_TEXT: a byte of text, sent as it is (a client's text: the
 *    server judges a bare CR, and must see it to do so);
 *  - DOTSTUFF_CR_EOL: a line end (stored text, which must leave as lines).
 * A CR at the very end of the text ends the last line in both.
 */
#ifndef MPP_DOTSTUFF_H
#define MPP_DOTSTUFF_H

#include <stddef.h>

enum dotstuff_cr {
	DOTSTUFF_CR_TEXT,	/* a CR alone is text */
	DOTSTUFF_CR_EOL		/* a CR alone ends the line */
};

/* dotstuff_put() converts a byte only with this much room left. */
#define DOTSTUFF_ROOM_MIN 4
/* Bytes dotstuff_end() writes at most. */
#define DOTSTUFF_END_MAX 5

struct dotstuff {
	enum dotstuff_cr cr_mode;
	int bol;		/* the next byte starts a line */
	int cr;			/* a CR is held back */
};

/* Start a new text. */
void dotstuff_init(struct dotstuff *d, enum dotstuff_cr cr_mode);

/*
 * Convert bytes of in[0..len) into out, which has room bytes free, while
 * at least DOTSTUFF_ROOM_MIN are left: the count of input bytes consumed
 * (0 when room is too small: empty out first). *written is set to the
 * bytes put into out.
 */
size_t dotstuff_put(struct dotstuff *d, const char *in, size_t len,
    char *out, size_t room, size_t *written);

/*
 * End the text: the held CR's line end, CRLF when the last line has none,
 * then "." CRLF. out must have DOTSTUFF_END_MAX bytes of room. The count
 * written.
 */
size_t dotstuff_end(struct dotstuff *d, char *out);

#endif
