/*
 * sha512crypt — SHA-512-crypt ("$6$", Drepper's SHA-crypt specification)
 * computed on OpenSSL's SHA-512, for checking passwords.
 *
 * Why not crypt(3) alone: libxcrypt's SHA-512 is portable C, OpenSSL's is
 * the CPU's vector code; the same check costs about two thirds of the
 * time, and with one check per session the check is most of what a new
 * session costs. Only settings in canonical form are taken (the salt of
 * 1 to 16 printable characters libxcrypt takes; "rounds=N$" only when N is a
 * decimal in range without leading zeros; after the salt nothing, or "$"
 * and hash characters); anything else is left to
 * crypt(3). The unit tests hold this output to libxcrypt's for every
 * shape of input.
 */
#ifndef MPP_SHA512CRYPT_H
#define MPP_SHA512CRYPT_H

#include <stddef.h>

/* "$6$rounds=999999999$" + 16 salt + "$" + 86 hash + NUL */
#define SHA512CRYPT_OUT_MAX 128

/*
 * Passwords of CRYPT_MAX_PASSPHRASE_SIZE bytes or more are declined, as
 * crypt(3) refuses them too.
 *
 * Hash password with setting ("$6$[rounds=N$]SALT[$...]") into out
 * (at least SHA512CRYPT_OUT_MAX bytes). 0 done; -1 when the setting is not
 * one this module takes, or the password is too long: use crypt(3).
 */
int sha512crypt(const char *password, const char *setting, char *out,
    size_t outsz);

/*
 * Nonzero when sha512crypt() computes setting itself rather than leaving
 * it to crypt(3) (for a password under CRYPT_MAX_PASSPHRASE_SIZE): the
 * two cost different times, which the password file's timing classes
 * must tell apart.
 */
int sha512crypt_takes(const char *setting);

#endif
