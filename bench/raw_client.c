/*
 * raw_client: the limit for lua-alloy's design, raw C on libcurl.
 *
 *   raw_client oneshot        URL [CAFILE]   one GET, prints the token
 *   raw_client seq   N        URL [CAFILE]   N GETs on one reused easy handle
 *   raw_client multi N C      URL [CAFILE]   N GETs over curl_multi, C in flight, reused handles
 *
 * The API key comes from the environment variable BENCH_API_KEY (never argv).
 * Every request sends the same headers as alloy.so: Authorization: Bearer <key>,
 * x-api-version, Accept: application/json and a User-Agent (as every peer does). Each response must be 200 with a "token".
 * seq and multi print "ok=<n> seconds=<elapsed>" (first request to last response).
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_VERSION "2025-09"

struct buf {
    char *data;
    size_t len, cap;
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Finds the "token" string value in a JSON body; returns its length, or 0. */
static size_t find_token(const char *body, const char **start)
{
    const char *p = strstr(body, "\"token\"");
    const char *q;
    if (!p)
        return 0;
    p += 7;
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return 0;
    p++;
    q = strchr(p, '"');
    if (!q || q == p)
        return 0;
    *start = p;
    return (size_t)(q - p);
}

static struct curl_slist *make_headers(void)
{
    const char *key = getenv("BENCH_API_KEY");
    struct curl_slist *h = NULL;
    char *auth;
    size_t n;
    if (!key || !*key) {
        fprintf(stderr, "raw_client: set BENCH_API_KEY in the environment\n");
        exit(2);
    }
    n = strlen(key) + sizeof "Authorization: Bearer ";
    auth = malloc(n);
    if (!auth)
        exit(2);
    snprintf(auth, n, "Authorization: Bearer %s", key);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "x-api-version: " API_VERSION);
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "User-Agent: raw_client libcurl");
    memset(auth, 0, n);
    free(auth);
    if (!h) {
        fprintf(stderr, "raw_client: out of memory\n");
        exit(2);
    }
    return h;
}

static CURL *make_handle(const char *url, const char *cafile, struct curl_slist *headers, struct buf *b)
{
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "raw_client: curl_easy_init failed\n");
        exit(1);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    if (cafile && *cafile && strcmp(cafile, "-") != 0)
        curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
    return e;
}

/* 1 when the finished transfer on e is a 200 with a token in b. */
static int check(CURL *e, CURLcode rc, const struct buf *b, int verbose)
{
    long status = 0;
    const char *tok;
    if (rc != CURLE_OK) {
        if (verbose)
            fprintf(stderr, "raw_client: %s\n", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || !b->data || find_token(b->data, &tok) == 0) {
        if (verbose)
            fprintf(stderr, "raw_client: HTTP %ld: %.200s\n", status, b->data ? b->data : "");
        return 0;
    }
    return 1;
}

static int run_oneshot(const char *url, const char *cafile)
{
    struct curl_slist *h = make_headers();
    struct buf b = { 0 };
    CURL *e = make_handle(url, cafile, h, &b);
    CURLcode rc = curl_easy_perform(e);
    const char *tok = NULL;
    size_t n;
    int ok = check(e, rc, &b, 1);
    if (ok) {
        n = find_token(b.data, &tok);
        printf("%.*s\n", (int)n, tok);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    free(b.data);
    return ok ? 0 : 1;
}

static int run_seq(long n, const char *url, const char *cafile)
{
    struct curl_slist *h = make_headers();
    struct buf b = { 0 };
    CURL *e = make_handle(url, cafile, h, &b);
    long i, ok = 0;
    double t0 = now_seconds(), t1;
    for (i = 0; i < n; i++) {
        CURLcode rc;
        b.len = 0;
        rc = curl_easy_perform(e);
        ok += check(e, rc, &b, ok == i);
    }
    t1 = now_seconds();
    printf("ok=%ld seconds=%.6f\n", ok, t1 - t0);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    free(b.data);
    return ok == n ? 0 : 1;
}

static int run_multi(long n, long c, const char *url, const char *cafile)
{
    struct curl_slist *h = make_headers();
    CURLM *m = curl_multi_init();
    CURL **handles;
    struct buf *bufs;
    long i, started = 0, done = 0, ok = 0;
    double t0, t1;
    int running = 0;

    if (c > n)
        c = n;
    if (c < 1)
        c = 1;
    handles = calloc((size_t)c, sizeof *handles);
    bufs = calloc((size_t)c, sizeof *bufs);
    if (!m || !handles || !bufs) {
        fprintf(stderr, "raw_client: out of memory\n");
        return 1;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, c);
    for (i = 0; i < c; i++) {
        handles[i] = make_handle(url, cafile, h, &bufs[i]);
        curl_easy_setopt(handles[i], CURLOPT_PRIVATE, (void *)&bufs[i]);
    }

    t0 = now_seconds();
    for (i = 0; i < c; i++) {
        curl_multi_add_handle(m, handles[i]);
        started++;
    }
    while (done < n) {
        CURLMsg *msg;
        int left;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "raw_client: %s\n", curl_multi_strerror(mc));
            break;
        }
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *e;
            struct buf *b = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            e = msg->easy_handle;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
            ok += check(e, msg->data.result, b, ok == done);
            done++;
            curl_multi_remove_handle(m, e);
            if (started < n) {
                b->len = 0;
                curl_multi_add_handle(m, e);
                started++;
            }
        }
        if (done < n) {
            mc = curl_multi_poll(m, NULL, 0, 1000, NULL);
            if (mc != CURLM_OK) {
                fprintf(stderr, "raw_client: %s\n", curl_multi_strerror(mc));
                break;
            }
        }
    }
    t1 = now_seconds();
    printf("ok=%ld seconds=%.6f\n", ok, t1 - t0);

    for (i = 0; i < c; i++) {
        curl_multi_remove_handle(m, handles[i]);
        curl_easy_cleanup(handles[i]);
        free(bufs[i].data);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    free(handles);
    free(bufs);
    return ok == n ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raw_client oneshot URL [CAFILE]\n"
            "       raw_client seq N URL [CAFILE]\n"
            "       raw_client multi N C URL [CAFILE]\n"
            "API key: environment variable BENCH_API_KEY\n");
    exit(2);
}

static long parse_count(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc < 3)
        usage();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (strcmp(argv[1], "oneshot") == 0 && argc <= 4)
        rc = run_oneshot(argv[2], argc > 3 ? argv[3] : NULL);
    else if (strcmp(argv[1], "seq") == 0 && argc >= 4 && argc <= 5)
        rc = run_seq(parse_count(argv[2]), argv[3], argc > 4 ? argv[4] : NULL);
    else if (strcmp(argv[1], "multi") == 0 && argc >= 5 && argc <= 6)
        rc = run_multi(parse_count(argv[2]), parse_count(argv[3]), argv[4], argc > 5 ? argv[5] : NULL);
    else
        usage();
    curl_global_cleanup();
    return rc;
}
