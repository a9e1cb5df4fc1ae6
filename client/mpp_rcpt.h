/*
 * mpp_rcpt — a message's recipients as an MPP server takes them, the
 * recipients that only the command line names, and the faults that make
 * the server refuse the message.
 *
 * An MPP server takes the recipients from the To:, Cc: and Bcc: fields and
 * removes Bcc: from the copy it stores: MPP carries no envelope. A mail
 * program that hands its mail to sendmail names every recipient as an
 * operand, and some (mutt, s-nail, git send-email --bcc) write the blind
 * ones nowhere else. So the client reads the header section before it
 * posts, and every operand recipient that the To:, Cc: and Bcc: fields do
 * not name goes into a Bcc: field put in front of the text: the server
 * delivers to it and nobody sees it. A resend (a resent block with
 * Resent-To, -Cc or -Bcc) goes to its resent block's recipients only,
 * so there the field is a Resent-Bcc: put at the top of that block.
 *
 * The header section is read the way mppd reads it (its rules are in
 * docs/architecture.md): it ends at an empty line, at a line that is
 * neither a field nor a continuation line (the body's first line), or at
 * the end of the text; the fields are parsed with common/rfc5322 and two
 * addresses are the same as rfc5322_addr_same() says (local parts
 * exactly, domains in any case; an address without a domain is the same
 * only as one without a domain, since the server's sender_domain is not
 * known here). A recipient that the client takes for new while the server
 * knows it for the same is harmless: the server delivers each recipient
 * once.
 *
 * Faults the header section shows are known before connecting
 * (mpp_rcpt_refusal); bare CRs and NULs further on are seen as the text
 * streams past (mpp_rcpt_scan) and explain a 550 afterwards
 * (mpp_rcpt_explain).
 */
#ifndef MPP_RCPT_H
#define MPP_RCPT_H

#include <stddef.h>

#include "buf.h"
#include "rfc5322.h"

/* mppd's bound on a header section, counted with LF line ends. */
#define MPP_RCPT_HEADER_MAX	(1024 * 1024)
/* Read ahead at most this much: a header section that does not end in it
   is over MPP_RCPT_HEADER_MAX however its lines end (CRLF at worst). */
#define MPP_RCPT_READ_MAX	(2 * MPP_RCPT_HEADER_MAX + 2)

/* One recipient given on the command line. */
struct mpp_rcpt_addr {
	char addr[RFC5322_ADDR_MAX + 1];	/* addr-spec, normalised */
	const char *operand;			/* the operand it came from */
};

/* The recipients given on the command line, duplicates left out. */
struct mpp_rcpt_list {
	struct mpp_rcpt_addr *v;
	size_t n;
};

/* What has been read of one message. Large: allocate it. */
struct mpp_rcpt {
	char buf[MPP_RCPT_READ_MAX];	/* read ahead: header, maybe more */
	size_t len;
	size_t line_start;	/* offset of the line being read */
	size_t hdr_end;		/* the fields end here (once done) */
	int done;		/* the header section has ended */
	int overflow;		/* ... or could not end in buf */
	int too_large;		/* over MPP_RCPT_HEADER_MAX */
	int starts_folded;	/* the first line is a continuation line */
	char *fields;		/* buf[0..hdr_end) with LF line ends */
	size_t fields_len;
	/* text checks over every byte read */
	unsigned long line;	/* line number of the next byte, from 1 */
	unsigned long bare_cr_line, nul_line;	/* first of each, 0: none */
	int cr;			/* the last byte was a CR */
	unsigned long long text_bytes;	/* counted as the server counts */
};

/*
 * Add the addresses of one recipient operand ("bob@example.org",
 * "Bob <bob@example.org>", "root", or a comma-separated list) to l,
 * leaving out any already there. 0, or -1 with a reason in err: the
 * operand is no address list, names no address, or memory ran out.
 */
int mpp_rcpt_list_add(struct mpp_rcpt_list *l, const char *operand,
    char *err, size_t errsz);

/* Free the list's addresses (NULL is fine); l is empty afterwards. */
void mpp_rcpt_list_free(struct mpp_rcpt_list *l);

/* Forget any message read before. */
void mpp_rcpt_init(struct mpp_rcpt *r);

/* Free what r holds (not r itself; NULL is fine): as after mpp_rcpt_init. */
void mpp_rcpt_clear(struct mpp_rcpt *r);

/*
 * Take the next bytes of the message while its header section is being
 * read: the count taken (all of them, or what still fits), 0 once the
 * header section has ended or overflowed. The bytes taken stay in r->buf,
 * to be sent after the Bcc: field. -1 (errno ENOMEM) when memory ran out.
 */
long mpp_rcpt_feed(struct mpp_rcpt *r, const char *data, size_t len);

/* The message has no more bytes: what was read is the header section. */
int mpp_rcpt_eof(struct mpp_rcpt *r);

/*
 * Read fd until the header section has ended (or the text has, or
 * MPP_RCPT_READ_MAX bytes are read). 0, or -1 with errno.
 */
int mpp_rcpt_read(struct mpp_rcpt *r, int fd);

/* Check text read after the header section (bare CR, NUL, line count). */
void mpp_rcpt_scan(struct mpp_rcpt *r, const char *data, size_t len);

/*
 * Is a named in a field the server takes recipients from: To:, Cc: or
 * Bcc:, or for a resend (a resent block with recipient fields, see
 * rfc5322_resent_block) that block's Resent-To:, -Cc: or -Bcc:? 1 (and
 * the field's name in *field), 0 when not. The header section must have
 * ended without a refusal.
 */
int mpp_rcpt_named(const struct mpp_rcpt *r, const struct mpp_rcpt_addr *a,
    const char **field);

/* The field that carries blind recipients: "Bcc", or "Resent-Bcc". */
const char *mpp_rcpt_bcc_name(const struct mpp_rcpt *r);

/*
 * Where in r->buf the blind recipients' field goes: 0, the top; for a
 * resend, the start of its resent block, so the field joins the block.
 */
size_t mpp_rcpt_bcc_at(const struct mpp_rcpt *r);

/*
 * Append to out the blind recipients' field (mpp_rcpt_bcc_name; LF line
 * ends, one address a line) of the addresses of l that the header
 * section does not name; nothing when it names them all. The count
 * appended, or -1 when memory ran out.
 */
long mpp_rcpt_bcc(const struct mpp_rcpt *r, const struct mpp_rcpt_list *l,
    struct buf *out);

/*
 * Why the server will refuse the message, known from its header section
 * with nrcpt recipients given on the command line: the reason (in buf),
 * or NULL when the header section gives it none.
 */
const char *mpp_rcpt_refusal(const struct mpp_rcpt *r, size_t nrcpt,
    char *buf, size_t size);

/*
 * The likely reason for a 550 after a text of bytes bytes: a bare CR or a
 * NUL seen in it, else the size (the limit is the server's to know).
 */
const char *mpp_rcpt_explain(const struct mpp_rcpt *r,
    unsigned long long bytes, char *buf, size_t size);

#endif /* MPP_RCPT_H */
