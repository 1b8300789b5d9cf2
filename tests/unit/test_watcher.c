/* SPDX-License-Identifier: Apache-2.0 */
/* The watcher's pure parts: kubeconfig loading, objects to addresses, the
 * watch stream splitter and the backoff (watcher/). */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "endpoints.h"
#include "eventstream.h"
#include "kubeconfig.h"
#include "check_run.h"

static char dir[] = "/tmp/apilb-kc-XXXXXX";
static char err[512];

static void write_file(const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int load(const char *text, struct kube_creds *c)
{
    char path[512];

    write_file("config", text);
    snprintf(path, sizeof(path), "%s/config", dir);
    return kube_creds_load_kubeconfig(path, c, err, sizeof(err));
}

#define KC_HEAD                                                                                    \
    "apiVersion: v1\nkind: Config\ncurrent-context: c\n"                                           \
    "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"

START_TEST(kubeconfig_files_relative)
{
    struct kube_creds c;
    char want[600];

    ck_assert_msg(load(KC_HEAD "clusters:\n- name: k\n  cluster:\n"
                               "    server: https://[fd00::1]:6443\n"
                               "    certificate-authority: pki/ca.crt\n"
                               "    tls-server-name: kubernetes\n"
                               "users:\n- name: u\n  user:\n"
                               "    client-certificate: /var/lib/kubelet/pki/current.pem\n"
                               "    client-key: /var/lib/kubelet/pki/current.pem\n",
                       &c) == 0,
                  "%s", err);
    ck_assert_str_eq(c.origin, "fd00::1");
    ck_assert_uint_eq(c.port, 6443);
    ck_assert_str_eq(c.tls_name, "kubernetes");
    snprintf(want, sizeof(want), "%s/pki/ca.crt", dir);
    ck_assert_str_eq(c.ca_file, want);
    ck_assert_str_eq(c.cert_file, "/var/lib/kubelet/pki/current.pem");
    ck_assert_ptr_null(c.token);
    kube_creds_free(&c);
}
END_TEST

START_TEST(kubeconfig_data_and_token)
{
    struct kube_creds c;
    char tok[64];

    /* "hello" and "world!" in base64. */
    ck_assert_msg(load(KC_HEAD "clusters:\n- name: k\n  cluster:\n"
                               "    server: https://10.0.0.1\n"
                               "    certificate-authority-data: aGVsbG8=\n"
                               "users:\n- name: u\n  user:\n    token: \"abc.def\"\n"
                               "    client-certificate-data: d29ybGQh\n"
                               "    client-key-data: d29ybGQh\n",
                       &c) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.port, 443);
    ck_assert_str_eq(c.ca_pem, "hello");
    ck_assert_str_eq(c.cert_pem, "world!");
    ck_assert_int_eq(kube_creds_token(&c, tok, sizeof(tok)), 7);
    ck_assert_str_eq(tok, "abc.def");
    kube_creds_free(&c);
    write_file("tok", "from-file\n\n");
    ck_assert_msg(load(KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h:1\n"
                               "users:\n- name: u\n  user:\n    tokenFile: tok\n",
                       &c) == 0,
                  "%s", err);
    ck_assert_int_eq(kube_creds_token(&c, tok, sizeof(tok)), 9);
    ck_assert_str_eq(tok, "from-file");
    kube_creds_free(&c);
    /* JSON is YAML too. */
    ck_assert_msg(load("{\"clusters\":[{\"name\":\"k\",\"cluster\":{\"server\":\"https://h:2\"}}],"
                       "\"users\":[],\"current-context\":\"\"}",
                       &c) == 0,
                  "%s", err);
    ck_assert_uint_eq(c.port, 2);
    kube_creds_free(&c);
}
END_TEST

START_TEST(kubeconfig_errors)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {KC_HEAD "clusters: []\nusers: []\n", "not found"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: http://h:1\n", "https://"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h:99999\n", "port"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
                 "    certificate-authority-data: '!!!'\n",
         "base64"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
                 "    insecure-skip-tls-verify: true\n    certificate-authority: x\n",
         "insecure"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
                 "users:\n- name: u\n  user:\n    client-certificate: c.pem\n",
         "key"},
        {KC_HEAD "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
                 "users:\n- name: u\n  user:\n    exec:\n      command: aws\n",
         "not supported"},
        {"a: &x [1]\nb: *x\n", "anchors"},
        {"clusters: [unclosed\n", "line"},
    };
    struct kube_creds c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(load(bad[i].text, &c) < 0, "accepted case %zu", i);
        ck_assert_msg(strstr(err, bad[i].want) != NULL && strstr(err, "--kubeconfig=") != NULL,
                      "case %zu: '%s' lacks '%s'", i, err, bad[i].want);
    }
}
END_TEST

static struct watcher_endpoint xep[16];
static int xfamily;

static size_t extract(const char *json, enum endpoints_kind kind, struct addr *out, int *rc)
{
    json_error_t e;
    json_t *o = json_loads(json, 0, &e);
    size_t n = 0;

    ck_assert_msg(o != NULL, "%s", e.text);
    err[0] = '\0';
    *rc = endpoints_extract(o, kind, xep, 16, &n, &xfamily, err, sizeof(err));
    json_decref(o);
    for (size_t i = 0; i < n; i++)
        out[i] = xep[i].addr;
    return n;
}

START_TEST(slices_and_endpoints)
{
    struct addr a[16];
    char buf[ADDR_STRLEN];
    int rc;
    size_t n;

    n = extract("{\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"metrics\",\"port\":9},"
                "{\"name\":\"https\",\"port\":6443}],\"endpoints\":["
                "{\"addresses\":[\"10.0.0.1\"],\"conditions\":{\"ready\":true}},"
                "{\"addresses\":[\"10.0.0.2\",\"10.0.0.9\"],\"conditions\":{\"ready\":null}},"
                "{\"addresses\":[\"10.0.0.3\"],\"conditions\":{\"ready\":false}}]}",
                ENDPOINTS_SLICE, a, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(xfamily, AF_INET);
    ck_assert_uint_eq(n, 2); /* ready nil counts, ready false does not, first address only */
    ck_assert_str_eq(addr_format(&a[1], buf, sizeof(buf)), "10.0.0.2:6443");
    n = extract("{\"addressType\":\"IPv6\",\"ports\":[{\"port\":443}],\"endpoints\":["
                "{\"addresses\":[\"fd00::5\"]}]}",
                ENDPOINTS_SLICE, a, &rc);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(xfamily, AF_INET6);
    ck_assert_str_eq(addr_format(&a[0], buf, sizeof(buf)), "[fd00::5]:443");
    n = extract("{\"addressType\":\"FQDN\",\"ports\":[{\"port\":443}],\"endpoints\":["
                "{\"addresses\":[\"api.example\"]}]}",
                ENDPOINTS_SLICE, a, &rc);
    ck_assert(rc == 1 && n == 0); /* ignored, and said so */
    n = extract("{\"subsets\":[{\"addresses\":[{\"ip\":\"10.0.0.1\"},{\"ip\":\"fd00::1\"}],"
                "\"notReadyAddresses\":[{\"ip\":\"10.0.0.7\"}],"
                "\"ports\":[{\"name\":\"https\",\"port\":6443}]}]}",
                ENDPOINTS_V1, a, &rc);
    ck_assert(rc == 0 && n == 2 && xfamily == AF_UNSPEC);
    n = extract("{\"metadata\":{}}", ENDPOINTS_V1, a, &rc);
    ck_assert(rc == 0 && n == 0);
}
END_TEST

/* endpoints[].zone and hints.forZones are kept with each address. */
START_TEST(slice_zones_and_hints)
{
    struct addr a[16];
    int rc;
    size_t n;

    n = extract("{\"addressType\":\"IPv4\",\"ports\":[{\"port\":6443}],\"endpoints\":["
                "{\"addresses\":[\"10.0.0.2\"],\"zone\":\"zone-b\","
                "\"hints\":{\"forZones\":[{\"name\":\"zone-b\"},{\"name\":\"zone-c\"}]}},"
                "{\"addresses\":[\"10.0.0.1\"],\"zone\":\"zone-a\",\"hints\":{\"forNodes\":[]}},"
                "{\"addresses\":[\"10.0.0.3\"],\"zone\":null}]}",
                ENDPOINTS_SLICE, a, &rc);
    ck_assert_msg(rc == 0 && n == 3, "%d %zu %s", rc, n, err);
    ck_assert_str_eq(xep[0].zone.name, "zone-b");
    ck_assert_uint_eq(xep[0].zone.n_for_zones, 2);
    ck_assert_str_eq(xep[0].zone.for_zones[1], "zone-c");
    ck_assert_str_eq(xep[1].zone.name, "zone-a");
    ck_assert_uint_eq(xep[1].zone.n_for_zones, 0);
    ck_assert_str_eq(xep[2].zone.name, "");
}
END_TEST

START_TEST(bad_objects)
{
    static const char *const bad[] = {
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":70000}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":\"443\"}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"127.0.0.1\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"169.254.1.1\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"224.0.0.1\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"not-an-ip\"]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[]}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":{}}",
        /* the other family than addressType says */
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"fd00::1\"]}]}",
        "{\"addressType\":\"IPv6\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"]}]}",
        "{\"addressType\":\"IPv6\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"fe80::1\"]}]}",
        "{\"addressType\":\"IPX\",\"ports\":[{\"port\":443}],\"endpoints\":[]}",
        /* zones and hints that are not label values, or too many hints */
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"zone\":\"a b\"}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"zone\":7}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"zone\":\"-a\"}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],"
        "\"zone\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"hints\":{\"forZones\":{}}}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"hints\":{\"forZones\":[{\"name\":\"x\\n\"}]}}]}",
        "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],\"hints\":{\"forZones\":"
        "[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"},{\"name\":\"e\"},{\"name\":\"f\"},{\"name\":\"g\"},{\"name\":\"h\"},{\"name\":\"i\"}]}}]}",
        "{\"subsets\":[{\"addresses\":[{\"ip\":\"::1\"}],\"ports\":[{\"port\":443}]}]}",
        "{\"subsets\":{}}",
    };
    struct addr a[16];
    int rc;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        extract(bad[i], strstr(bad[i], "subsets") ? ENDPOINTS_V1 : ENDPOINTS_SLICE, a, &rc);
        ck_assert_msg(rc == -EINVAL && err[0] != '\0', "accepted %s", bad[i]);
    }
}
END_TEST

static struct watcher_endpoint ep(const char *s, const char *zone)
{
    struct watcher_endpoint e;
    const char *why;

    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(addr_parse(s, -1, &e.addr, &why), 0);
    snprintf(e.zone.name, sizeof(e.zone.name), "%s", zone);
    return e;
}

/* Every object's endpoints merged: deduplicated, sorted, IPv4 and IPv6
 * slices in one set; the zone of a doubly listed address comes from the
 * object first by name, whatever the order they were seen in. */
START_TEST(cache_merge)
{
    struct endpoints_cache *c = calloc(1, sizeof(*c));
    struct watcher_endpoint v4[2] = {ep("10.0.0.2:6443", "b"), ep("10.0.0.1:6443", "a")};
    struct watcher_endpoint v6[1] = {ep("[fd00::1]:6443", "a")};
    struct watcher_endpoint dup[1] = {ep("10.0.0.1:6443", "other")};
    struct watcher_endpoint out[8];
    struct endpoints_split split;

    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes-v6", AF_INET6, v6, 1), 0);
    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes", AF_INET, v4, 2), 0);
    ck_assert_uint_eq(endpoints_cache_merge(c, out, 8, &split), 3);
    ck_assert(!split.found);                                  /* two families are no replacement */
    ck_assert_int_eq(addr_cmp(&out[0].addr, &v4[1].addr), 0); /* sorted */
    ck_assert_str_eq(out[0].zone.name, "a");
    ck_assert_int_eq(out[2].addr.ss.ss_family, AF_INET6);
    ck_assert_int_eq(endpoints_cache_set(c, "zz-endpoints", AF_UNSPEC, dup, 1), 0);
    ck_assert_uint_eq(endpoints_cache_merge(c, out, 8, &split), 3);
    ck_assert_str_eq(out[0].zone.name, "a"); /* "kubernetes" sorts first */
    endpoints_cache_remove(c, "kubernetes");
    ck_assert_uint_eq(endpoints_cache_merge(c, out, 8, NULL), 2);
    ck_assert_str_eq(out[0].zone.name, "other");
    endpoints_cache_clear(c);
    ck_assert_uint_eq(endpoints_cache_merge(c, out, 8, NULL), 0);
    free(c);
}
END_TEST

/* A replacement in flight: two slices of one family that list different
 * apiservers are reported (their union never existed), equal ones or an
 * empty one are not; a family that vanishes while another stays is. */
START_TEST(cache_replacement_seen)
{
    struct endpoints_cache *c = calloc(1, sizeof(*c));
    struct watcher_endpoint old[2] = {ep("10.0.0.1:6443", ""), ep("10.0.0.2:6443", "")};
    struct watcher_endpoint new[2] = {ep("10.0.0.3:6443", ""), ep("10.0.0.4:6443", "")};
    struct watcher_endpoint v6[1] = {ep("[fd00::1]:6443", "")};
    struct watcher_endpoint out[8], applied[8];
    struct endpoints_split split;
    size_t n, na;

    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes", AF_INET, old, 2), 0);
    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes-v6", AF_INET6, v6, 1), 0);
    na = endpoints_cache_merge(c, applied, 8, &split);
    ck_assert(na == 3 && !split.found);
    /* add-then-delete: the new slice beside the old one */
    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes-new", AF_INET, new, 2), 0);
    n = endpoints_cache_merge(c, out, 8, &split);
    ck_assert_uint_eq(n, 5);
    ck_assert(split.found && split.family == AF_INET);
    ck_assert_str_eq(split.a, "kubernetes");
    ck_assert_str_eq(split.b, "kubernetes-new");
    /* the same set twice is harmless; so is an empty slice */
    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes-new", AF_INET, old, 2), 0);
    endpoints_cache_merge(c, out, 8, &split);
    ck_assert(!split.found);
    ck_assert_int_eq(endpoints_cache_set(c, "kubernetes-new", AF_INET, new, 0), 0);
    endpoints_cache_merge(c, out, 8, &split);
    ck_assert(!split.found);
    /* delete-then-add with the IPv6 slice left: the IPv4 family vanished */
    endpoints_cache_remove(c, "kubernetes-new");
    endpoints_cache_remove(c, "kubernetes");
    n = endpoints_cache_merge(c, out, 8, &split);
    ck_assert(n == 1 && !split.found);
    ck_assert_int_eq(endpoints_family_lost(applied, na, out, n), AF_INET);
    ck_assert_int_eq(endpoints_family_lost(applied, na, out, 0), 0); /* empty: a rule of its own */
    ck_assert_int_eq(endpoints_family_lost(applied, na, applied, na), 0);
    ck_assert(endpoints_same(applied, na, applied, na));
    out[0] = applied[0];
    snprintf(out[0].zone.name, sizeof(out[0].zone.name), "zone-a");
    ck_assert(!endpoints_same(applied, 1, out, 1)); /* a zone change is a change */
    endpoints_cache_clear(c);
    free(c);
}
END_TEST

struct seen {
    int n;
    char types[16][16];
};

static int on_ev(void *arg, json_t *ev)
{
    struct seen *s = arg;

    snprintf(s->types[s->n % 16], 16, "%s", json_string_value(json_object_get(ev, "type")));
    s->n++;
    return 0;
}

START_TEST(stream_any_split)
{
    const char *stream = "{\"type\":\"ADDED\",\"object\":{\"a\":\"x}\\\"{\"}}\n"
                         "{\"type\":\"BOOKMARK\",\"object\":{}}\n"
                         "  {\"type\":\"DELETED\",\"object\":{\"b\":[1,2,{\"c\":null}]}}";
    size_t len = strlen(stream);

    /* Every split into two pieces, and byte by byte. */
    for (size_t cut = 0; cut <= len; cut++) {
        struct eventstream es;
        struct seen s = {0};

        eventstream_init(&es, 4096);
        ck_assert_int_eq(eventstream_feed(&es, stream, cut, on_ev, &s), 0);
        ck_assert_int_eq(eventstream_feed(&es, stream + cut, len - cut, on_ev, &s), 0);
        ck_assert_msg(s.n == 3, "split at %zu gave %d events", cut, s.n);
        ck_assert_str_eq(s.types[2], "DELETED");
        eventstream_free(&es);
    }
    {
        struct eventstream es;
        struct seen s = {0};

        eventstream_init(&es, 4096);
        for (size_t i = 0; i < len; i++)
            ck_assert_int_eq(eventstream_feed(&es, stream + i, 1, on_ev, &s), 0);
        ck_assert_int_eq(s.n, 3);
        eventstream_free(&es);
    }
}
END_TEST

START_TEST(stream_bad_and_bounded)
{
    struct eventstream es;
    struct seen s = {0};
    char big[300];

    eventstream_init(&es, 256);
    ck_assert_int_eq(eventstream_feed(&es, "{\"type\":]}\n", 11, on_ev, &s), -EBADMSG);
    eventstream_reset(&es);
    ck_assert_int_eq(eventstream_feed(&es, "garbage\n", 8, on_ev, &s), -EBADMSG);
    eventstream_reset(&es);
    memset(big, 'a', sizeof(big));
    big[0] = '{';
    ck_assert_int_eq(eventstream_feed(&es, big, sizeof(big), on_ev, &s), -E2BIG);
    eventstream_free(&es);
}
END_TEST

/* Thousands of endpoints: more than the bound is refused, not cut to fit. */
START_TEST(thousands_bounded)
{
    size_t cap = 64 + 5000 * 48, len;
    char *json = malloc(cap);
    struct watcher_endpoint a[16];
    size_t n = 0;
    json_error_t e;
    json_t *o;
    int family;

    ck_assert_ptr_nonnull(json);
    len = (size_t)snprintf(json, cap,
                           "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":443}],"
                           "\"endpoints\":[");
    for (int i = 0; i < 5000; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s{\"addresses\":[\"10.%d.%d.%d\"]}",
                                i ? "," : "", i / 65536 + 1, i / 256 % 256, i % 256 + 0);
    len += (size_t)snprintf(json + len, cap - len, "]}");
    o = json_loadb(json, len, 0, &e);
    ck_assert_msg(o != NULL, "%s", e.text);
    /* Refused whole, naming the count and the bound: never cut to 16. */
    ck_assert_int_eq(endpoints_extract(o, ENDPOINTS_SLICE, a, 16, &n, &family, err, sizeof(err)),
                     -E2BIG);
    ck_assert_msg(strstr(err, "5000") != NULL && strstr(err, "16") != NULL, "%s", err);
    json_decref(o);
    free(json);
}
END_TEST

/* Two objects whose union is over the bound: the merge says how many there
 * are and writes nothing (the watcher refuses the set); at the bound it fits. */
START_TEST(merge_over_bound_refused)
{
    static struct watcher_endpoint a[3], b[3], out[5];
    struct endpoints_cache c;
    char ip[32];

    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 3; i++) {
        snprintf(ip, sizeof(ip), "10.1.0.%d", i + 1);
        ck_assert_int_eq(addr_from_ip(ip, 443, &a[i].addr), 0);
        snprintf(ip, sizeof(ip), "10.1.0.%d", i + 3); /* 10.1.0.3 in both */
        ck_assert_int_eq(addr_from_ip(ip, 443, &b[i].addr), 0);
    }
    ck_assert_int_eq(endpoints_cache_set(&c, "a", AF_INET, a, 3), 0);
    ck_assert_int_eq(endpoints_cache_set(&c, "b", AF_INET, b, 3), 0);
    memset(out, 0, sizeof(out));
    ck_assert_uint_eq(endpoints_cache_merge(&c, out, 4, NULL), 5);
    ck_assert_int_eq(out[0].addr.len, 0); /* nothing written */
    ck_assert_uint_eq(endpoints_cache_merge(&c, out, 5, NULL), 5);
    ck_assert_int_ne(out[4].addr.len, 0);
    endpoints_cache_clear(&c);
}
END_TEST

/* Deeply nested JSON in a watch event is refused before it is parsed (the
 * nesting bound of jsonlimit.h), not a crash; an event over the buffer cap is
 * refused before it is parsed. */
START_TEST(stream_nested_and_huge)
{
    size_t depth = 200000, len = 0;
    char *deep = malloc(2 * depth + 64);
    struct eventstream es;
    struct seen s = {0};

    ck_assert_ptr_nonnull(deep);
    len += (size_t)sprintf(deep, "{\"type\":\"ADDED\",\"object\":");
    memset(deep + len, '[', depth);
    len += depth;
    memset(deep + len, ']', depth);
    len += depth;
    deep[len++] = '}';
    deep[len++] = '\n';
    eventstream_init(&es, EVENTSTREAM_MAX_BYTES);
    ck_assert_int_eq(eventstream_feed(&es, deep, len, on_ev, &s), -EMSGSIZE);
    ck_assert_str_eq(es.why, "JSON nested deeper than 64");
    ck_assert_int_eq(s.n, 0);
    eventstream_free(&es);
    free(deep);

    /* 9 MiB of one string with no newline: over the 8 MiB cap. */
    {
        size_t big = 9u << 20, off = 0;
        char *huge = malloc(big);
        int rc = 0;

        ck_assert_ptr_nonnull(huge);
        memset(huge, 'x', big);
        memcpy(huge, "{\"type\":\"ADDED\",\"object\":{\"a\":\"", 31);
        eventstream_init(&es, EVENTSTREAM_MAX_BYTES);
        while (off < big && rc == 0) { /* as libcurl hands it over: 16 KiB at a time */
            size_t n = big - off < 16384 ? big - off : 16384;

            rc = eventstream_feed(&es, huge + off, n, on_ev, &s);
            off += n;
        }
        ck_assert_int_eq(rc, -E2BIG);
        ck_assert_uint_le(off, EVENTSTREAM_MAX_BYTES + 16384);
        eventstream_free(&es);
        free(huge);
    }
}
END_TEST

START_TEST(backoff_like_client_go)
{
    struct backoff b;
    uint64_t t = 1000000, prev_base = 0;

    backoff_init(&b, 42);
    for (int i = 0; i < 12; i++) {
        uint64_t base = b.next_ms, d = backoff_next(&b, t, 0);

        ck_assert_msg(d >= base && d <= 2 * base, "delay %llu outside [%llu, %llu]",
                      (unsigned long long)d, (unsigned long long)base,
                      (unsigned long long)(2 * base));
        ck_assert(base <= BACKOFF_MAX_MS);
        ck_assert(base >= prev_base);
        prev_base = base;
        t += d;
    }
    ck_assert_uint_eq(b.next_ms, BACKOFF_MAX_MS);
    ck_assert_uint_ge(backoff_next(&b, t + 1, 45000), 45000); /* Retry-After wins */
    backoff_next(&b, t + 1 + BACKOFF_RESET_MS + 1, 0);        /* quiet for 2 min: reset */
    ck_assert_uint_eq(b.next_ms, 2 * BACKOFF_INIT_MS);
}
END_TEST

int main(void)
{
    TCase *tc;
    Suite *s = check_suite("watcher", &tc);
    int failed;

    if (mkdtemp(dir) == NULL)
        return 1;
    tcase_add_test(tc, kubeconfig_files_relative);
    tcase_add_test(tc, kubeconfig_data_and_token);
    tcase_add_test(tc, kubeconfig_errors);
    tcase_add_test(tc, slices_and_endpoints);
    tcase_add_test(tc, bad_objects);
    tcase_add_test(tc, slice_zones_and_hints);
    tcase_add_test(tc, cache_merge);
    tcase_add_test(tc, cache_replacement_seen);
    tcase_add_test(tc, stream_any_split);
    tcase_add_test(tc, stream_bad_and_bounded);
    tcase_add_test(tc, stream_nested_and_huge);
    tcase_add_test(tc, thousands_bounded);
    tcase_add_test(tc, merge_over_bound_refused);
    tcase_add_test(tc, backoff_like_client_go);
    failed = check_run(s);
    {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)!system(cmd);
    }
    return failed;
}
