/* SPDX-License-Identifier: Apache-2.0 */
/* See tlshello.h. Record layout (RFC 8446 5.1): type(1) version(2) length(2)
 * then the fragment; a handshake message (4.) is type(1) length(3) body,
 * and may be split across records. */
#include "tlshello.h"

#include <stdint.h>

#define REC_HANDSHAKE 22
#define REC_HEADER 5
#define REC_MAX 16384u
#define HS_CLIENT_HELLO 1
#define HS_HEADER 4

bool tlshello_prefix(const unsigned char *p, size_t n)
{
    size_t off = 0;
    uint64_t hs_pos = 0; /* handshake bytes seen, across records */
    uint32_t hs_len = 0; /* the ClientHello's body length, once known */

    while (off < n) {
        size_t left = n - off, len, take;

        /* The header as far as it came: type, then major version 3, then a
         * minor version up to TLS 1.3's record value range (0x0300..0x0304). */
        if (p[off] != REC_HANDSHAKE || (left > 1 && p[off + 1] != 3) ||
            (left > 2 && p[off + 2] > 4))
            return false;
        if (left < REC_HEADER)
            return true;
        len = (size_t)p[off + 3] << 8 | p[off + 4];
        if (len == 0 || len > REC_MAX)
            return false;
        off += REC_HEADER;
        take = n - off < len ? n - off : len;
        for (size_t i = 0; i < take; i++, hs_pos++) {
            unsigned char b = p[off + i];

            if (hs_pos == 0 && b != HS_CLIENT_HELLO)
                return false;
            if (hs_pos >= 1 && hs_pos < HS_HEADER)
                hs_len = hs_len << 8 | b;
            /* A byte after the ClientHello is a second message: the client
             * heard from the server, or is not a TLS client at all. */
            if (hs_pos >= HS_HEADER && hs_pos >= (uint64_t)HS_HEADER + hs_len)
                return false;
        }
        off += take;
    }
    return true;
}
