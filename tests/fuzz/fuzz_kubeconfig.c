/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzzes kubeconfig loading (YAML through libyaml, then the kubeconfig
 * rules), from an in-memory file. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_creds c;
    char path[64], err[512];
    int fd;

    if (size > 65536)
        return 0;
    fd = memfd_create("kubeconfig", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (kube_creds_load_kubeconfig(path, &c, err, sizeof(err)) == 0)
            kube_creds_free(&c);
    }
    close(fd);
    return 0;
}
