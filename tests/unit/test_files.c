/* SPDX-License-Identifier: Apache-2.0 */
/* The upstreams file and the state file parsers (proxy/upfile.h,
 * proxy/statefile.h). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filewatch.h"
#include "statefile.h"
#include "upfile.h"
#include "check_run.h"

static char err[256];

#define PARSE(text, out, max) upfile_parse(text, strlen(text), out, max, err, sizeof(err))

START_TEST(upfile_valid)
{
    struct config_seed s[8];
    const char *text = "# control plane\n"
                       "\n"
                       "10.0.0.1:6443\r\n"
                       "  10.0.0.2:6443   # second\n"
                       "[fd00::3]:6443\n"
                       "cp-4.example.com\n"
                       "10.0.0.1:6443\n" /* duplicate */
                       "10.0.0.5:443";   /* no final newline */

    ck_assert_int_eq(PARSE(text, s, 8), 5);
    ck_assert_str_eq(s[0].host, "10.0.0.1");
    ck_assert_str_eq(s[1].host, "10.0.0.2");
    ck_assert_str_eq(s[2].host, "fd00::3");
    ck_assert_str_eq(s[3].host, "cp-4.example.com");
    ck_assert_uint_eq(s[3].port, UPFILE_DEFAULT_PORT);
    ck_assert_uint_eq(s[4].port, 443);
    ck_assert_int_eq(PARSE("", s, 8), 0);
    ck_assert_int_eq(PARSE("# only comments\n\n", s, 8), 0);
}
END_TEST

START_TEST(upfile_errors_name_the_line)
{
    struct config_seed s[2];

    ck_assert_int_eq(PARSE("10.0.0.1:6443\n10.0.0.2:99999\n", s, 2), -EINVAL);
    ck_assert_msg(strstr(err, "line 2") && strstr(err, "99999"), "%s", err);
    ck_assert_int_eq(PARSE("[fd00::1:6443\n", s, 2), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    ck_assert_int_eq(PARSE("10.0.0.1:1\n10.0.0.2:2\n10.0.0.3:3\n", s, 2), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "more than 2"));
    ck_assert_int_eq(upfile_parse("10.0.0.1:6443\n1\0.0.0.2:1\n", 25, s, 2, err, sizeof(err)),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
    {
        char longline[600];

        memset(longline, 'a', sizeof(longline) - 1);
        longline[sizeof(longline) - 1] = '\0';
        ck_assert_int_eq(PARSE(longline, s, 2), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "too long"));
    }
}
END_TEST

START_TEST(upfile_read_files)
{
    struct config_seed s[4];
    char path[] = "/tmp/apilb-upfile-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "10.0.0.1:6443\n", 14), 14);
    close(fd);
    ck_assert_int_eq(upfile_read(path, s, 4, err, sizeof(err)), 1);
    /* Larger than the bound: refused, named. */
    f = fopen(path, "w");
    for (unsigned i = 0; i < UPFILE_MAX_BYTES / 16 + 2; i++)
        fputs("# padding......\n", f);
    fclose(f);
    ck_assert_int_eq(upfile_read(path, s, 4, err, sizeof(err)), -EFBIG);
    ck_assert_ptr_nonnull(strstr(err, path));
    unlink(path);
    ck_assert_int_lt(upfile_read(path, s, 4, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

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
            pos += (size_t)snprintf(out + pos, len - pos, "%s%s", pos ? " " : "",
                                    ents[i]->d_name);
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

/* --- filewatch ------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static char *scratch(void)
{
    static char dir[64];

    snprintf(dir, sizeof(dir), "/tmp/apilb-fw.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(filewatch_in_place_rewrite)
{
    char *dir = scratch(), path[128];
    struct filewatch fw;

    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    write_file(path, "old CA\n");
    filewatch_init(&fw);
    ck_assert_int_eq(filewatch_add(&fw, path), 0);
    ck_assert(filewatch_notifies(&fw));
    ck_assert(!filewatch_changed(&fw, 1)); /* nothing happened */
    write_file(path, "new CA, longer\n");
    ck_assert(filewatch_changed(&fw, 2));   /* inotify: no wait for the poll */
    ck_assert(!filewatch_changed(&fw, 3)); /* reported once */
    filewatch_free(&fw);
    rm_rf(dir);
}
END_TEST

/* What kubelet does to a projected volume: writes the new content in a new
 * ..<stamp> directory and renames a new ..data symlink over the old one. */
static void projected_write(const char *dir, const char *stamp, const char *token)
{
    char p[256], q[256];

    snprintf(p, sizeof(p), "%s/%s", dir, stamp);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/%s/token", dir, stamp);
    write_file(p, token);
    snprintf(p, sizeof(p), "%s/..data_tmp", dir);
    ck_assert_int_eq(symlink(stamp, p), 0);
    snprintf(q, sizeof(q), "%s/..data", dir);
    ck_assert_int_eq(rename(p, q), 0);
}

/* A projected token: token -> ..data/token, ..data -> ..<stamp>. */
START_TEST(filewatch_projected_swap)
{
    char *dir = scratch(), p[256];
    struct filewatch fw;

    projected_write(dir, "..2026_01", "token-one");
    snprintf(p, sizeof(p), "%s/token", dir);
    ck_assert_int_eq(symlink("..data/token", p), 0);
    filewatch_init(&fw);
    ck_assert_int_eq(filewatch_add(&fw, p), 0);
    ck_assert(!filewatch_changed(&fw, 1));
    projected_write(dir, "..2026_02", "token-two"); /* same size: the inode tells */
    ck_assert(filewatch_changed(&fw, 2));
    ck_assert(!filewatch_changed(&fw, 3));
    /* The next swap is seen too (the watch follows the new target). */
    projected_write(dir, "..2026_03", "token-3");
    ck_assert(filewatch_changed(&fw, 4));
    filewatch_free(&fw);
    rm_rf(dir);
}
END_TEST

/* kubelet's client certificate: the -current symlink is removed, then the
 * new one renamed into place. Missing in between is not a change. */
START_TEST(filewatch_missing_mid_swap)
{
    char *dir = scratch(), p[256], cur[256];
    struct filewatch fw;

    snprintf(p, sizeof(p), "%s/kubelet-client-1.pem", dir);
    write_file(p, "cert one");
    snprintf(cur, sizeof(cur), "%s/kubelet-client-current.pem", dir);
    ck_assert_int_eq(symlink("kubelet-client-1.pem", cur), 0);
    filewatch_init(&fw);
    ck_assert_int_eq(filewatch_add(&fw, cur), 0);
    ck_assert_int_eq(unlink(cur), 0);
    ck_assert(!filewatch_changed(&fw, 1)); /* gone for a moment */
    snprintf(p, sizeof(p), "%s/kubelet-client-2.pem", dir);
    write_file(p, "cert two");
    ck_assert_int_eq(symlink("kubelet-client-2.pem", cur), 0);
    ck_assert(filewatch_changed(&fw, 2));
    filewatch_free(&fw);
    rm_rf(dir);
}
END_TEST

/* Without inotify, the stat comparison runs every FILEWATCH_POLL_MS. */
START_TEST(filewatch_poll_fallback)
{
    char *dir = scratch(), path[128];
    struct filewatch fw;

    snprintf(path, sizeof(path), "%s/token", dir);
    write_file(path, "a");
    filewatch_init(&fw);
    close(fw.fd);
    fw.fd = -1;
    ck_assert_int_eq(filewatch_add(&fw, path), 0);
    ck_assert(!filewatch_notifies(&fw));
    ck_assert(!filewatch_changed(&fw, FILEWATCH_POLL_MS));
    write_file(path, "bb");
    ck_assert(!filewatch_changed(&fw, FILEWATCH_POLL_MS + 1)); /* not yet due */
    ck_assert(filewatch_changed(&fw, 2 * FILEWATCH_POLL_MS));
    ck_assert_int_eq(filewatch_add(&fw, NULL), 0);
    filewatch_free(&fw);
    rm_rf(dir);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("files", &tc);

    tcase_add_test(tc, upfile_valid);
    tcase_add_test(tc, upfile_errors_name_the_line);
    tcase_add_test(tc, upfile_read_files);
    tcase_add_test(tc, statefile_round_trip);
    tcase_add_test(tc, statefile_foreign);
    tcase_add_test(tc, statefile_write_ignores_planted_link);
    tcase_add_test(tc, filewatch_in_place_rewrite);
    tcase_add_test(tc, filewatch_projected_swap);
    tcase_add_test(tc, filewatch_missing_mid_swap);
    tcase_add_test(tc, filewatch_poll_fallback);
    return check_run(s);
}
