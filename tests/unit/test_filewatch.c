/* SPDX-License-Identifier: Apache-2.0 */
/* Watching a file for changes: in-place rewrites, the kubelet's projected
 * volume swaps, and the poll fallback (proxy/filewatch.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filewatch.h"
#include "check_run.h"

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

/* filewatch_init(fw) with inotify: when every inotify instance of this user
 * is taken (fs.inotify.max_user_instances, shared with whatever else runs
 * on the host), waits up to a minute for one to be free, then fails saying
 * so; filewatch would fall back to polling, which these tests do not test. */
static void init_notifying(struct filewatch *fw)
{
    for (int i = 0; i < 600; i++) {
        filewatch_init(fw);
        if (fw->fd >= 0 || errno != EMFILE)
            break;
        usleep(100 * 1000);
    }
    ck_assert_msg(fw->fd >= 0, "no inotify instance for 60 s: %s (fs.inotify.max_user_instances)",
                  strerror(errno));
}

START_TEST(filewatch_in_place_rewrite)
{
    char *dir = scratch(), path[128];
    struct filewatch fw;

    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    write_file(path, "old CA\n");
    init_notifying(&fw);
    ck_assert_int_eq(filewatch_add(&fw, path), 0);
    ck_assert(filewatch_notifies(&fw));
    ck_assert(!filewatch_changed(&fw, 1)); /* nothing happened */
    write_file(path, "new CA, longer\n");
    ck_assert(filewatch_changed(&fw, 2));  /* inotify: no wait for the poll */
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
    init_notifying(&fw);
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
    init_notifying(&fw);
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
    Suite *s = check_suite("filewatch", &tc);

    tcase_add_test(tc, filewatch_in_place_rewrite);
    tcase_add_test(tc, filewatch_projected_swap);
    tcase_add_test(tc, filewatch_missing_mid_swap);
    tcase_add_test(tc, filewatch_poll_fallback);
    return check_run(s);
}
