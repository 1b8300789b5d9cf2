/* SPDX-License-Identifier: Apache-2.0 */
/* The TLS side of a kube_creds on a libcurl handle: TLS 1.2 at least, the CA
 * the apiserver is verified with (no verification only when the kubeconfig
 * says insecure-skip-tls-verify), the client certificate and key. Data held
 * in memory is copied into the handle; files are read by curl at each
 * connection, so rotated files are used without a reload. The thread that
 * owns the handle. */
#ifndef WATCHER_CREDCURL_H
#define WATCHER_CREDCURL_H

#include <curl/curl.h>

#include "kubeconfig.h"

/* Sets the options above on h from c (borrowed; curl copies what it keeps
 * of the data, and keeps the file names' pointers: c must outlive h's
 * transfers). */
void credcurl_apply(CURL *h, const struct kube_creds *c);

#endif
