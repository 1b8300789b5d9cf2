/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes the command line and environment: the input is split at NUL bytes;
 * words before an empty word are argv, after it "NAME=value" environment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define MAX_WORDS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy, *argv[MAX_WORDS + 2], *env[MAX_WORDS + 1];
    int argc = 1, envc = 0;
    bool in_env = false;
    struct config cfg;
    char err[CONFIG_ERR_BYTES];
    size_t start = 0;

    if (size > 4096)
        return 0;
    copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[0] = (char *)"apilb";
    for (size_t i = 0; i <= size; i++) {
        if (copy[i] != '\0')
            continue;
        if (i == start && !in_env) {
            in_env = true;
        } else if (in_env && envc < MAX_WORDS) {
            env[envc++] = copy + start;
        } else if (!in_env && argc < MAX_WORDS) {
            argv[argc++] = copy + start;
        }
        start = i + 1;
    }
    argv[argc] = NULL;
    env[envc] = NULL;
    if (config_parse(&cfg, argc, argv, env, 2, NULL, err) == 0) {
        FILE *f = fopen("/dev/null", "w");

        if (f != NULL) {
            config_print(&cfg, f);
            fclose(f);
        }
    }
    config_free(&cfg);
    free(copy);
    return 0;
}
