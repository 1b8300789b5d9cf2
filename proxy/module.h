/* SPDX-License-Identifier: Apache-2.0 */
/* Optional parts loaded only when configured: discovery (apilb-discovery.so:
 * the watcher with libcurl, jansson and libyaml) and the admin endpoint
 * (apilb-admin.so: libmicrohttpd). Linking them into the executable cost
 * every apilb 6 MiB of resident memory for libraries and their start-up
 * (libcurl alone pulls OpenSSL, GnuTLS through librtmp, Kerberos and LDAP),
 * whether or not discovery or the admin endpoint were on.
 *
 * A module is looked for next to the executable (the build directory), then
 * in APILB_MODULE_DIR (installed: /usr/lib/apilb). Never from the
 * environment: the executable may carry a file capability. Modules call the
 * executable's own functions (logging, addresses, files), which it exports.
 * A loaded module stays loaded, so what module_load() returned may be used
 * from any thread for the life of the process. */
#ifndef PROXY_MODULE_H
#define PROXY_MODULE_H

#include <stddef.h>

/* Loads file (e.g. "apilb-discovery.so") and returns the address of its
 * symbol, or NULL with a message naming the places looked at in err. Main
 * thread, before other threads start (dlopen runs the module's constructors):
 * a caller that caches the result for other threads loads it there first. */
const void *module_load(const char *file, const char *symbol, char *err, size_t errlen);

#endif
