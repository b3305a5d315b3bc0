/*
 * raw_client: the limit for lua-alloy's design, raw C on libcurl.
 *
 *   raw_client oneshot        URL [CAFILE]   one GET, prints the token
 *   raw_client seq   N        URL [CAFILE]   N GETs on one reused easy handle
 *   raw_client multi N C      URL [CAFILE]   N GETs over curl_multi, C in flight, reused handles
 *   raw_client each  C BASE CONNECTOR ACTION CREDENTIAL FILE [CAFILE]
 *                                            what `alloy run ... --each FILE` does: GET the
 *                                            action's schema, then POST one execute per line of
 *                                            FILE ({"credentialId":..,"requestBody":<line>}) over
 *                                            curl_multi, C in flight; prints each answer on its
 *                                            own line, in line order; RAW_FRESH_CONNECT=1: a new
 *                                            connection per POST, as alloy opens
 *
 * The API key comes from the environment variable BENCH_API_KEY (never argv).
 * Every request sends the same headers as alloy.so: Authorization: Bearer <key>,
 * x-api-version, Accept: application/json and a User-Agent (as every peer does). Each response must be 200 with a "token".
 * seq and multi print "ok=<n> seconds=<elapsed>" (first request to last response).
 * each checks every answer is a 200 with "success":true; exit 1 when one is not.
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

/* 1 when the finished transfer on e is a 200 with a token in b (marker NULL), or whose
 * body holds marker; with verbose, says why not. */
static int check(CURL *e, CURLcode rc, const struct buf *b, const char *marker, int verbose)
{
    long status = 0;
    const char *tok;
    if (rc != CURLE_OK) {
        if (verbose)
            fprintf(stderr, "raw_client: %s\n", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || !b->data || (marker ? !strstr(b->data, marker) : find_token(b->data, &tok) == 0)) {
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
    int ok = check(e, rc, &b, NULL, 1);
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
        ok += check(e, rc, &b, NULL, ok == i);
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
            ok += check(e, msg->data.result, b, NULL, ok == done);
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

/* Reads all of path; NULL on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b = { 0 };
    char chunk[65536];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (on_write(chunk, 1, n, &b) != n)
            break;
    fclose(f);
    *len = b.len;
    return b.data ? b.data : calloc(1, 1);
}

/* One execute of `each`: its line's request body and, once answered, the answer. */
struct execute {
    char *body;
    struct buf answer;
    int done, ok;
};

static void start_execute(CURLM *m, CURL *e, struct execute *x)
{
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &x->answer);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
    curl_multi_add_handle(m, e);
}

static int run_each(long c, const char *base, const char *connector, const char *action,
                    const char *credential, const char *file, const char *cafile)
{
    struct curl_slist *h = make_headers();
    struct curl_slist *post_h;
    int fresh = getenv("RAW_FRESH_CONNECT") && strcmp(getenv("RAW_FRESH_CONNECT"), "1") == 0;
    size_t len, n = 0, cap = 0, i, next_out = 0;
    char *text = read_file(file, &len), *line, *url, *exec_url;
    struct execute *ex = NULL;
    struct buf schema = { 0 };
    CURLM *m;
    CURL **handles, *e;
    long started = 0, done = 0, ok = 0, slots;
    int running = 0;

    if (!text) {
        fprintf(stderr, "raw_client: cannot read %s\n", file);
        return 2;
    }
    /* the action's schema first, as `alloy run` reads it */
    len = strlen(base) + strlen(connector) + strlen(action) + 64;
    url = malloc(len);
    exec_url = malloc(len);
    if (!url || !exec_url)
        return 2;
    snprintf(url, len, "%s/connectors/%s/actions/%s", base, connector, action);
    snprintf(exec_url, len, "%s/connectors/%s/actions/%s/execute", base, connector, action);
    e = make_handle(url, cafile, h, &schema);
    if (!check(e, curl_easy_perform(e), &schema, "\"action\"", 1)) {
        curl_easy_cleanup(e);
        return 1;
    }
    curl_easy_cleanup(e);
    free(schema.data);

    /* one execute per line that is not blank */
    for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t k = strlen(line);
        if (k && line[k - 1] == '\r')
            line[--k] = '\0';
        if (strspn(line, " \t") == k)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            ex = realloc(ex, cap * sizeof *ex);
            if (!ex)
                return 2;
        }
        memset(&ex[n], 0, sizeof ex[n]);
        ex[n].body = malloc(k + strlen(credential) + 64);
        if (!ex[n].body)
            return 2;
        sprintf(ex[n].body, "{\"credentialId\":\"%s\",\"requestBody\":%s}", credential, line);
        n++;
    }
    post_h = curl_slist_append(NULL, "Content-Type: application/json");
    post_h = curl_slist_append(post_h, "Expect:");
    for (struct curl_slist *x = h; x; x = x->next)
        post_h = curl_slist_append(post_h, x->data);

    slots = c < (long)n ? c : (long)n;
    m = curl_multi_init();
    handles = calloc((size_t)(slots ? slots : 1), sizeof *handles);
    if (!m || !handles || !post_h)
        return 2;
    for (i = 0; i < (size_t)slots; i++) {
        handles[i] = make_handle(exec_url, cafile, post_h, NULL);
        curl_easy_setopt(handles[i], CURLOPT_FRESH_CONNECT, (long)fresh);
    }
    for (i = 0; i < (size_t)slots; i++)
        start_execute(m, handles[i], &ex[started++]);
    while (done < (long)n) {
        CURLMsg *msg;
        int left;
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct execute *x = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            e = msg->easy_handle;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
            x->ok = check(e, msg->data.result, &x->answer, "\"success\":true", ok == done);
            x->done = 1;
            ok += x->ok;
            done++;
            curl_multi_remove_handle(m, e);
            if (started < (long)n)
                start_execute(m, e, &ex[started++]);
        }
        /* answers in line order, as soon as the ones before are in */
        for (; next_out < n && ex[next_out].done; next_out++) {
            printf("%s\n", ex[next_out].answer.data ? ex[next_out].answer.data : "");
            free(ex[next_out].answer.data);
            free(ex[next_out].body);
        }
        if (done < (long)n && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    for (i = 0; i < (size_t)slots; i++)
        curl_easy_cleanup(handles[i]);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    curl_slist_free_all(post_h);
    free(handles);
    free(ex);
    free(text);
    free(url);
    free(exec_url);
    fprintf(stderr, "%ld lines: %ld succeeded, %ld failed\n", (long)n, ok, (long)n - ok);
    return ok == (long)n ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raw_client oneshot URL [CAFILE]\n"
            "       raw_client seq N URL [CAFILE]\n"
            "       raw_client multi N C URL [CAFILE]\n"
            "       raw_client each C BASE CONNECTOR ACTION CREDENTIAL FILE [CAFILE]\n"
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
    else if (strcmp(argv[1], "each") == 0 && argc >= 8 && argc <= 9)
        rc = run_each(parse_count(argv[2]), argv[3], argv[4], argv[5], argv[6], argv[7], argc > 8 ? argv[8] : NULL);
    else
        usage();
    curl_global_cleanup();
    return rc;
}
