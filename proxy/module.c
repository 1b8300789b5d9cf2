/* SPDX-License-Identifier: Apache-2.0 */
/* Loading optional parts; see module.h. */
#include "module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef APILB_MODULE_DIR
#define APILB_MODULE_DIR "/usr/lib/apilb"
#endif

/* dir receives the directory of the running executable, or "" . */
static void exe_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    char *slash;

    if (n <= 0) {
        dir[0] = '\0';
        return;
    }
    dir[n] = '\0';
    slash = strrchr(dir, '/');
    if (slash == NULL)
        dir[0] = '\0';
    else
        *slash = '\0';
}

const void *module_load(const char *file, const char *symbol, char *err, size_t errlen)
{
    char dirs[2][PATH_MAX], path[2 * PATH_MAX + 2], first[256] = "";
    void *h = NULL, *sym;

    exe_dir(dirs[0], sizeof(dirs[0]));
    snprintf(dirs[1], sizeof(dirs[1]), "%s", APILB_MODULE_DIR);
    for (int i = 0; i < 2 && h == NULL; i++) {
        if (dirs[i][0] == '\0')
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dirs[i], file) >= sizeof(path) ||
            access(path, F_OK) != 0)
            continue;
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL && first[0] == '\0')
            snprintf(first, sizeof(first), "%s", dlerror());
    }
    if (h == NULL) {
        if (first[0] != '\0')
            snprintf(err, errlen, "cannot load %s: %s", file, first);
        else
            snprintf(err, errlen, "%s not found in %s or %s (it is built and installed with apilb)",
                     file, dirs[0][0] ? dirs[0] : "(the executable's directory)", dirs[1]);
        return NULL;
    }
    sym = dlsym(h, symbol);
    if (sym == NULL) {
        snprintf(err, errlen, "%s has no %s: not a module of this apilb", file, symbol);
        return NULL;
    }
    return sym;
}
