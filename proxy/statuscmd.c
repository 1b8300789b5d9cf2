/* SPDX-License-Identifier: Apache-2.0 */
/* apilb status; see statuscmd.h. */
#include "statuscmd.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "jsoncheck.h"

#define DEFAULT_ADMIN "127.0.0.1:9444"

struct answer {
    char *buf; /* STATUSCMD_MAX_BYTES + 1, NUL-terminated */
    size_t len;
};

/* Waits until fd is ready for events or the deadline passes; 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left = deadline - (int64_t)clock_now_ms();
    int rc;

    if (left <= 0)
        return -ETIMEDOUT;
    do
        rc = poll(&p, 1, (int)left);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : -ETIMEDOUT;
}

/* Connects to a and sends GET path; returns the fd or a negative errno. */
static int ask(const struct addr *a, const char *path, int64_t deadline)
{
    char req[256];
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0, len;
    socklen_t el = sizeof(err);

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        err = -errno;
        close(fd);
        return err;
    }
    if (wait_fd(fd, POLLOUT, deadline) < 0) {
        close(fd);
        return -ETIMEDOUT;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
        close(fd);
        return -(err != 0 ? err : errno);
    }
    len = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: apilb\r\nUser-Agent: apilb-status\r\n"
                   "Connection: close\r\n\r\n",
                   path);
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        err = -errno;
        close(fd);
        return err != 0 ? err : -EIO;
    }
    return fd;
}

/* Reads until EOF, the byte limit or the deadline. 0, -EFBIG, -ETIMEDOUT or
 * a negative errno. */
static int read_all(int fd, struct answer *ans, int64_t deadline)
{
    for (;;) {
        ssize_t n;

        if (ans->len > STATUSCMD_MAX_BYTES)
            return -EFBIG;
        n = recv(fd, ans->buf + ans->len, STATUSCMD_MAX_BYTES + 1 - ans->len, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            if (wait_fd(fd, POLLIN, deadline) < 0)
                return -ETIMEDOUT;
            continue;
        }
        ans->len += (size_t)n;
    }
    ans->buf[ans->len] = '\0';
    return 0;
}

/* Splits the HTTP answer: checks the status line and framing, and points
 * *body at the body. 0, or -EPROTO with why. */
static int parse_http(struct answer *ans, const char **body, size_t *body_len, int *status,
                      const char **why)
{
    char *end, *cl;
    long long want = -1;

    if (memchr(ans->buf, '\0', ans->len) != NULL) {
        *why = "it sent a NUL byte";
        return -EPROTO;
    }
    if (strncmp(ans->buf, "HTTP/1.", 7) != 0 || ans->len < 12 || ans->buf[8] != ' ') {
        *why = "its answer is not HTTP";
        return -EPROTO;
    }
    *status = atoi(ans->buf + 9);
    end = strstr(ans->buf, "\r\n\r\n");
    if (end == NULL) {
        *why = "its answer ends inside the headers";
        return -EPROTO;
    }
    *end = '\0';
    *body = end + 4;
    *body_len = ans->len - (size_t)(*body - ans->buf);
    for (cl = strchr(ans->buf, '\n'); cl != NULL; cl = strchr(cl + 1, '\n'))
        if (strncasecmp(cl + 1, "content-length:", 15) == 0)
            want = atoll(cl + 16);
        else if (strncasecmp(cl + 1, "transfer-encoding:", 18) == 0) {
            *why = "it sent a chunked answer (apilb sends a length)";
            return -EPROTO;
        }
    if (want >= 0 && (size_t)want != *body_len) {
        *why = "its answer was cut short (Content-Length does not match)";
        return -EPROTO;
    }
    return 0;
}

/* The table must be printable ASCII, spaces and newlines only. */
static const char *printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\n'))
            return "it sent bytes that are not printable text";
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: apilb status [--admin ADDR:PORT] [-o table|json]\n\n"
                 "Asks the apilb whose admin endpoint is at ADDR:PORT (default "
                 "$APILB_ADMIN_LISTEN, else " DEFAULT_ADMIN ")\n"
                 "which upstreams it uses and why, and what its watcher does.\n");
}

/* Reads the arguments into *admin and *format. Returns -1 to go on, or the
 * exit status (0 after --help, 1 for a bad argument, said on errout). */
static int parse_args(int argc, char **argv, char **env, const char **admin, const char **format,
                      FILE *out, FILE *errout)
{
    for (char **e = env; e != NULL && *e != NULL; e++)
        if (strncmp(*e, "APILB_ADMIN_LISTEN=", 19) == 0)
            *admin = *e + 19;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(out);
            return 0;
        }
        if (strncmp(arg, "--admin=", 8) == 0 || strncmp(arg, "--output=", 9) == 0)
            v = strchr(arg, '=') + 1;
        else if ((strcmp(arg, "--admin") == 0 || strcmp(arg, "-o") == 0 ||
                  strcmp(arg, "--output") == 0) &&
                 i + 1 < argc)
            v = argv[++i];
        if (v == NULL) {
            fprintf(errout, "apilb status: unknown or incomplete argument %s\n", arg);
            usage(errout);
            return 1;
        }
        if (strncmp(arg, "--admin", 7) == 0)
            *admin = v;
        else
            *format = v;
    }
    if (strcmp(*format, "table") != 0 && strcmp(*format, "json") != 0) {
        fprintf(errout, "apilb status: -o %s: must be table or json\n", *format);
        return 1;
    }
    return -1;
}

/* The admin address to ask into *a. Returns -1 to go on, or the exit status
 * (said on errout). */
static int admin_addr(const char *admin, struct addr *a, FILE *errout)
{
    const char *why = NULL;

    if (admin == NULL || admin[0] == '\0')
        admin = DEFAULT_ADMIN;
    if (strcmp(admin, "off") == 0) {
        fprintf(errout, "apilb status: the admin endpoint is off (--admin-listen=off): "
                        "nothing to ask\n");
        return 2;
    }
    if (addr_parse(admin, -1, a, &why) < 0) {
        fprintf(errout, "apilb status: --admin=%s: %s\n", admin, why);
        return 1;
    }
    return -1;
}

/* What is wrong with the answer read into ans (rc: read_all()'s result), or
 * NULL with *body, *len set; *status: its HTTP status, 0 when none. */
static const char *judge(struct answer *ans, int rc, bool json, const char **body, size_t *len,
                         int *status)
{
    static char jerr[128];
    const char *why = NULL;

    if (rc == -EFBIG)
        return "its answer is larger than 1 MiB";
    if (rc == -ETIMEDOUT)
        return "it did not answer in full within 5 s";
    if (rc < 0)
        return strerror(-rc);
    if (parse_http(ans, body, len, status, &why) == 0 && *status != 200)
        return "it did not answer 200";
    if (why != NULL)
        return why;
    if (!json)
        return printable(*body, *len);
    if (jsoncheck(*body, *len, jerr, sizeof(jerr)) < 0)
        return jerr;
    return NULL;
}

int statuscmd_main(int argc, char **argv, char **env, FILE *out, FILE *errout)
{
    const char *admin = NULL, *format = "table", *why, *body = NULL;
    char name[ADDR_STRLEN];
    struct answer ans = {0};
    struct addr a;
    size_t body_len = 0;
    int status = 0, fd, rc;
    bool json;
    int64_t deadline;

    rc = parse_args(argc, argv, env, &admin, &format, out, errout);
    if (rc < 0)
        rc = admin_addr(admin, &a, errout);
    if (rc >= 0)
        return rc;
    json = strcmp(format, "json") == 0;
    addr_format(&a, name, sizeof(name));
    deadline = (int64_t)clock_now_ms() + STATUSCMD_TIMEOUT_MS;
    fd = ask(&a, json ? "/upstreams" : "/status", deadline);
    if (fd < 0) {
        fprintf(errout, "apilb status: cannot reach the admin endpoint %s: %s%s\n", name,
                strerror(-fd),
                fd == -ECONNREFUSED ? " (is apilb running, with --admin-listen at this address?)"
                                    : "");
        return 2;
    }
    ans.buf = malloc(STATUSCMD_MAX_BYTES + 1);
    if (ans.buf == NULL) {
        close(fd);
        fprintf(errout, "apilb status: out of memory\n");
        return 2;
    }
    rc = read_all(fd, &ans, deadline);
    close(fd);
    why = judge(&ans, rc, json, &body, &body_len, &status);
    if (why != NULL) {
        fprintf(errout, "apilb status: the admin endpoint %s: %s", name, why);
        if (status != 0 && status != 200)
            fprintf(errout, " (HTTP %d)", status);
        fputc('\n', errout);
        free(ans.buf);
        return 2;
    }
    fwrite(body, 1, body_len, out);
    free(ans.buf);
    return 0;
}
