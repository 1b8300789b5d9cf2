/* SPDX-License-Identifier: Apache-2.0 */
/* Recognises the only client bytes that apilb may replay to another upstream:
 * the start of a TLS handshake, before the server has said anything. A
 * ClientHello cannot make a server act (it carries no application data;
 * 0-RTT data would come in records of another type), so an upstream that
 * received one and died can be replaced by the next one, invisibly. Pure. */
#ifndef PROXY_TLSHELLO_H
#define PROXY_TLSHELLO_H

#include <stdbool.h>
#include <stddef.h>

/* True when p[0..n) is a whole or cut-short sequence of TLS handshake
 * records (content type 22, version 3.x, 1..16384 bytes each) whose
 * handshake bytes are one ClientHello message or the start of one, and
 * nothing else. False for anything else (plaintext, a second handshake
 * message, change_cipher_spec, early data, alerts). n == 0 is true (nothing
 * was sent). p is borrowed; any thread. */
bool tlshello_prefix(const unsigned char *p, size_t n);

#endif
