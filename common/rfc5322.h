/*
 * rfc5322 — parsing of an Internet message's header section, of the
 * address lists in its To:, Cc:, Bcc:, From: and Sender: fields (and their
 * Resent- forms), of the display text around those addresses, and of the
 * "by" part of a Received: field.
 *
 * The parser works on bytes already normalised by the text reader: lines end
 * in a bare LF (never CRLF), and the input is not NUL-terminated. It does no
 * allocation and keeps no state between calls, so it is safe to call from any
 * thread and to feed untrusted input: every length is bounded by the caller's
 * buffer and no byte past buf[len - 1] is ever read.
 */
#ifndef MPP_RFC5322_H
#define MPP_RFC5322_H

#include <stddef.h>

/* Longest addr-spec we accept, in bytes (RFC 5321 §4.5.3.1.3 path limit). */
#define RFC5322_ADDR_MAX 256

/* One header field as it appears in the header section. */
struct rfc5322_field {
	const char *name;	/* field name, without the colon */
	size_t name_len;
	const char *value;	/* after the colon up to (not incl.) the final LF,
				   continuation lines and their LFs included */
	size_t value_len;
	const char *raw;	/* whole field: name through final LF */
	size_t raw_len;
};

/*
 * Return the next header field of the header section in buf[0..len), starting
 * at *off, and advance *off past it.
 *   1  a field was returned in *f;
 *   0  the header section ended at *off: an empty line (then *off is advanced
 *      past that empty line, so buf + *off is the body), or the end of buf, or
 *      a line that is neither a field nor a continuation (then *off is left at
 *      the start of that line: it is the first line of the body);
 *  -1  malformed: a continuation line (starting with SP/HT) where no field
 *      precedes it, i.e. at the very start of the header section.
 * A field name is one or more printable US-ASCII characters other than
 * colon (33..126 except 58); whitespace between name and colon is tolerated
 * (obs-syntax) and not part of the name. The final field may lack its LF when
 * buf ends without one: then raw/value end at buf + len.
 */
int rfc5322_next_field(const char *buf, size_t len, size_t *off,
    struct rfc5322_field *f);

/* Nonzero when the field's name equals name, ignoring ASCII case. */
int rfc5322_field_is(const struct rfc5322_field *f, const char *name);

/* Nonzero when the field's name starts with "Resent-" (any case). */
int rfc5322_field_is_resent(const struct rfc5322_field *f);

/*
 * The resent block of a header section: its topmost run of Resent-
 * fields. RFC 5322 3.6.6 puts each new block on top, so this one is the
 * sender's own resending; runs further down are history. A block with a
 * Resent-To, Resent-Cc or Resent-Bcc is a resend, whose recipients are
 * those fields' (as sendmail -t takes them). Offsets in the header
 * section; start == end when there is none.
 */
struct rfc5322_resent_block {
	size_t start, end;	/* its first field; just past its last */
	int has_rcpt;		/* a Resent-To, -Cc or -Bcc: a resend */
};

/* Locate the resent block of the header section hdr[0..len) in *b. */
void rfc5322_resent_block(const char *hdr, size_t len,
    struct rfc5322_resent_block *b);

/* Is f a recipient field of a resend (Resent-To, -Cc, -Bcc)? */
int rfc5322_field_is_resent_rcpt(const struct rfc5322_field *f);

/*
 * Called once per mailbox found in an address list, with its addr-spec
 * normalised: comments, display names, angle brackets and folding removed,
 * a quoted local part kept in its quoted form (e.g. "john doe"@example.org),
 * NUL-terminated, at most RFC5322_ADDR_MAX bytes. An address with no
 * domain (a bare local part, as some clients write "To: bob") is passed with
 * has_domain 0. Return 0 to go on, nonzero to stop the parse (which then
 * returns that value).
 */
typedef int (*rfc5322_addr_cb)(const char *addr, int has_domain, void *ctx);

/*
 * Parse an RFC 5322 address-list (the value of To:, Cc:, Bcc:, From:...):
 * mailboxes, name-addr with display names (atoms, quoted strings, encoded
 * words are just atoms here), angle-addr, comments (nested, with quoted
 * pairs), groups ("undisclosed-recipients:;", "team: a@x, b@y;"), folding
 * whitespace (LF followed by SP/HT), and the common obs forms (empty list
 * elements ",,", a route in an angle-addr "<@relay:a@b>" which is dropped).
 * Domain literals "[192.0.2.1]" are accepted as a domain.
 *   0  the whole value parsed (an empty or all-whitespace value is valid and
 *      yields no address);
 *  -1  syntax error (cb may have been called for addresses before it);
 *  other: the nonzero value a callback returned.
 * Bytes >= 0x80 are accepted inside quoted strings, comments and display
 * names (8-bit headers exist in the wild) but not in an addr-spec.
 */
int rfc5322_parse_addresses(const char *value, size_t len, rfc5322_addr_cb cb,
    void *ctx);

/*
 * As rfc5322_addr_cb, with the offset in the value just past the mailbox's
 * local part (its last word), where "@domain" goes when it has none.
 */
typedef int (*rfc5322_addr_at_cb)(const char *addr, int has_domain,
    size_t local_end, void *ctx);

/* rfc5322_parse_addresses(), the callback told where each local part ends. */
int rfc5322_parse_addresses_at(const char *value, size_t len,
    rfc5322_addr_at_cb cb, void *ctx);

/*
 * Nonzero when addr-specs a and b name the same mailbox: the local parts
 * equal byte for byte (RFC 5321 §2.4: only the receiving host may fold their
 * case), the domains equal ignoring ASCII case.
 */
int rfc5322_addr_same(const char *a, const char *b);

/* Longest piece of display text rendered whole, in bytes. */
#define RFC5322_TEXT_MAX 1024

/*
 * Called once per piece of display text of an address list -- each display
 * name, group name and comment -- as a mail reader shows it: the quotes of
 * quoted strings and the backslashes of quoted pairs removed, folding
 * removed, RFC 2047 encoded words ("=?utf-8?q?...?=", B or Q, found
 * anywhere, even inside quotes) decoded to their bytes without charset
 * conversion, whitespace between two encoded words dropped, the piece
 * trimmed of surrounding whitespace. A comment inside a display name is a
 * piece of its own and a space in the name. Empty pieces are not passed.
 * text is NUL-terminated, but a decoded word may hold a NUL: len counts.
 * exact is 0 when the piece could not be rendered faithfully: it was longer
 * than RFC5322_TEXT_MAX bytes (text is then its beginning), or it holds an
 * encoded word in a charset that does not write ASCII as ASCII bytes
 * (UTF-7, UTF-16, UTF-32, UCS-2, UCS-4), where an '@' could hide. Return
 * 0 to go on, nonzero to stop the walk (which then returns that value).
 */
typedef int (*rfc5322_text_cb)(const char *text, size_t len, int exact,
    void *ctx);

/*
 * Walk the display text of the address list value[0..len): every comment,
 * and outside angle brackets the words before a '<' (a display name) or a
 * ':' (a group name). A mailbox's addr-spec is not display text. Meant for
 * a value rfc5322_parse_addresses() accepted; any other is still read
 * within len. 0, or the nonzero value cb returned.
 */
int rfc5322_display_text(const char *value, size_t len, rfc5322_text_cb cb,
    void *ctx);

/* Nonzero when text[0..len) holds an at-sign: '@', U+FF20 or U+FE6B. */
int rfc5322_has_at_sign(const char *text, size_t len);

/*
 * Nonzero when the value of a Received: field, value[0..len), names host
 * after "by": the word "by" in any case, not part of a longer word (no
 * letter, digit, '-', '.', '_' or 8-bit byte next to it), then any
 * whitespace, folding, '"', '[', '<' and whole comments, then host in any
 * ASCII case with at most one trailing dot, not followed by another of
 * those word bytes. "by" is sought everywhere, inside comments and quoted
 * strings too (a "by" in a comment needs its host in that comment): a
 * forger's text is read as broadly as a person reading the trace would.
 * Linear in len.
 */
int rfc5322_received_by(const char *value, size_t len, const char *host);

#endif
