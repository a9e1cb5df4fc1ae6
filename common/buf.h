/*
 * buf — a growable byte buffer. The owner frees it with buf_free(); the
 * data is not NUL-terminated unless buf_nul() is called.
 */
#ifndef MPP_BUF_H
#define MPP_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Append n bytes; 0, or -1 (ENOMEM) leaving the buffer as it was. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append a string. */
int buf_puts(struct buf *b, const char *s);
/* printf-append; -1 on ENOMEM. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Make data a C string (a NUL after len, not counted). */
int buf_nul(struct buf *b);
/* Forget the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Free the data; the struct may be reused (it is zeroed). */
void buf_free(struct buf *b);

#endif
