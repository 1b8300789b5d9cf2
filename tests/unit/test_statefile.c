/* SPDX-License-Identifier: Apache-2.0 */
/* The state file: its format, parser, reader and writer (proxy/statefile.h). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statefile.h"
#include "check_run.h"

static char err[256];

START_TEST(statefile_round_trip)
{
    struct addr in[3], out[4];
    const char *why;
    char buf[1024], path[] = "/tmp/apilb-state-XXXXXX";
    int len, fd;

    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &in[0], &why), 0);
    ck_assert_int_eq(addr_parse("[fd00::2]:6443", -1, &in[1], &why), 0);
    ck_assert_int_eq(addr_parse("10.0.0.3:443", -1, &in[2], &why), 0);
    len = statefile_format(in, 3, buf, sizeof(buf));
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(statefile_parse(buf, (size_t)len, out, 4, err, sizeof(err)), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(addr_cmp(&in[i], &out[i]), 0);
    /* Every truncation of a good file is rejected. */
    for (int cut = 0; cut < len; cut++)
        ck_assert_msg(statefile_parse(buf, (size_t)cut, out, 4, err, sizeof(err)) < 0,
                      "accepted a file cut at %d", cut);
    /* So is any single flipped byte. */
    for (int i = 0; i < len; i++) {
        char copy[1024];

        memcpy(copy, buf, (size_t)len);
        copy[i] ^= 0x01;
        ck_assert_msg(statefile_parse(copy, (size_t)len, out, 4, err, sizeof(err)) < 0,
                      "accepted a file with byte %d changed", i);
    }
    ck_assert_int_eq(statefile_parse(buf, (size_t)len, out, 2, err, sizeof(err)), -EINVAL);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(statefile_write(path, in, 3, err, sizeof(err)), 0);
    ck_assert_int_eq(statefile_read(path, out, 4, err, sizeof(err)), 3);
    unlink(path);
    ck_assert_int_eq(statefile_read(path, out, 4, err, sizeof(err)), -ENOENT);
}
END_TEST

/* The names a directory holds, sorted, joined by spaces, into out. */
static void dir_names(const char *dir, char *out, size_t len)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    size_t pos = 0;

    out[0] = '\0';
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.')
            pos += (size_t)snprintf(out + pos, len - pos, "%s%s", pos ? " " : "", ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
}

/* A link planted where the temporary file would go (the old name was
 * "<path>.tmp.<pid>") does not redirect the write: its target keeps its
 * bytes, and the write leaves no temporary file behind. */
START_TEST(statefile_write_ignores_planted_link)
{
    struct addr in[1], out[2];
    const char *why;
    char dir[] = "/tmp/apilb-state-XXXXXX", path[256], link[300], victim[256], got[64];
    char names[512], want[512];
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    snprintf(link, sizeof(link), "%s.tmp.%ld", path, (long)getpid());
    f = fopen(victim, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(victim, link), 0);
    ck_assert_int_eq(addr_parse("10.0.0.1:6443", -1, &in[0], &why), 0);
    ck_assert_int_eq(statefile_write(path, in, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(statefile_write(path, in, 1, err, sizeof(err)), 0);
    f = fopen(victim, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(got, sizeof(got), f));
    fclose(f);
    ck_assert_str_eq(got, "precious\n");
    ck_assert_int_eq(statefile_read(path, out, 2, err, sizeof(err)), 1);
    dir_names(dir, names, sizeof(names));
    snprintf(want, sizeof(want), "state state.tmp.%ld victim", (long)getpid());
    ck_assert_str_eq(names, want);
    /* A directory it cannot write in: an error naming it, nothing left. */
    ck_assert_int_eq(chmod(dir, 0500), 0);
    if (access(dir, W_OK) != 0) { /* root writes anyway */
        ck_assert_int_eq(statefile_write(path, in, 1, err, sizeof(err)), -EACCES);
        ck_assert_ptr_nonnull(strstr(err, dir));
    }
    ck_assert_int_eq(chmod(dir, 0700), 0);
    dir_names(dir, names, sizeof(names));
    ck_assert_str_eq(names, want);
    unlink(link);
    unlink(victim);
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(statefile_foreign)
{
    struct addr out[2];
    const char *json = "{\"upstreams\":[]}\n";

    ck_assert_int_eq(statefile_parse(json, strlen(json), out, 2, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not an apilb state file"));
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("statefile", &tc);

    tcase_add_test(tc, statefile_round_trip);
    tcase_add_test(tc, statefile_foreign);
    tcase_add_test(tc, statefile_write_ignores_planted_link);
    return check_run(s);
}
