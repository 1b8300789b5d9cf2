/* SPDX-License-Identifier: Apache-2.0 */
/* The log lines of a registry rebuild (registry.h is pure and logs
 * nothing): each upstream that came, came back or left, and every address
 * a rebuild left out, so that no loss is silent. Control thread. */
#ifndef PROXY_REGLOG_H
#define PROXY_REGLOG_H

#include "registry.h"

/* Logs what ch refused, rate-limited (nothing when it refused none). */
void reglog_refusals(const struct registry *r, const struct registry_changes *ch);

/* Logs each change of ch, reason naming what triggered the rebuild. */
void reglog_changes(const struct registry_changes *ch, const char *reason);

#endif
