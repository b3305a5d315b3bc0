/* MD5, as the Connectivity API's uploads need it (the upload request names the file's MD5, the
 * storage host checks Content-MD5): libcrypto's EVP digest, loaded at run time. No Lua types. */
#ifndef ALLOY_MD5_H
#define ALLOY_MD5_H

#include <stddef.h>

#define MD5_LEN 16

/* Loads libcrypto once; 0, or -1 with a reason in err. */
int md5_load(char *err, size_t err_size);
/* A running digest (md5_load must have succeeded), or NULL when libcrypto refuses one (FIPS
 * mode); md5_final frees it whatever happens and returns 0, or -1. */
void *md5_begin(void);
void md5_update(void *ctx, const void *data, size_t n);
int md5_final(void *ctx, unsigned char digest[MD5_LEN]);
void md5_abandon(void *ctx);
/* The digest as 32 lower-case hex digits, or as 24 base64 characters (Content-MD5's form). */
void md5_hex(const unsigned char digest[MD5_LEN], char out[2 * MD5_LEN + 1]);
void md5_base64(const unsigned char digest[MD5_LEN], char out[25]);
/* An MD5 given in hex (32 digits, any case) or base64 (24 characters) -> digest; 0, or -1. */
int md5_parse(const char *s, size_t n, unsigned char digest[MD5_LEN]);

#endif
