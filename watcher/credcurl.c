/* SPDX-License-Identifier: Apache-2.0 */
/* Credentials on a curl handle; see credcurl.h. */
#include "credcurl.h"

#include <string.h>

/* Hands curl a PEM held in memory (copied) or, failing that, its file. */
static void set_pem(CURL *h, CURLoption blob_opt, CURLoption file_opt, const char *pem,
                    const char *file)
{
    if (pem != NULL) {
        struct curl_blob blob = {.data = (void *)pem, .len = strlen(pem), .flags = CURL_BLOB_COPY};

        curl_easy_setopt(h, blob_opt, &blob);
    } else if (file != NULL) {
        curl_easy_setopt(h, file_opt, file);
    }
}

void credcurl_apply(CURL *h, const struct kube_creds *c)
{
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        set_pem(h, CURLOPT_CAINFO_BLOB, CURLOPT_CAINFO, c->ca_pem, c->ca_file);
    }
    set_pem(h, CURLOPT_SSLCERT_BLOB, CURLOPT_SSLCERT, c->cert_pem, c->cert_file);
    set_pem(h, CURLOPT_SSLKEY_BLOB, CURLOPT_SSLKEY, c->key_pem, c->key_file);
}
