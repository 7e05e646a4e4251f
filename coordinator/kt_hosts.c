/* hosts.txt: the workers a coordinator connects to.
 *
 *   # comment
 *   worker1.lab                       port 7461 (KT_DEFAULT_PORT)
 *   10.0.0.2:7500 name=rack2 key=<Z85 public key, 40 characters>
 *   [fd00::2]:7461                    IPv6 in brackets
 *
 * A '#' that begins a line or follows a blank starts a comment (Z85 keys may
 * hold '#'). One worker per line: a host (DNS name, IPv4, or IPv6 in brackets) with an
 * optional port, then key=value words: name= (how logs and results call the
 * worker; default host:port) and key= (the worker's CURVE public key; a
 * worker without one is reached in plain text). Unknown keys, repeated keys,
 * repeated endpoints or names, ports outside 1..65535 and lines over
 * S_LINE_MAX bytes are errors, reported as "FILE:LINE: what". */
#include "kt_hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"

#define S_LINE_MAX 1024
#define S_FILE_MAX (1u << 20)
#define S_Z85_KEY_LEN 40

static const char s_z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            ".-:+=^!/*?&<>()[]{}@%$#";

/* Formats the error; values are cut and control characters masked so an
 * error stays one readable line. Returns -EINVAL. */
__attribute__((format(printf, 5, 6))) static int
s_fail(char *err, size_t err_len, const char *origin, unsigned line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (line)
        snprintf(err, err_len, "%s:%u: %s", origin, line, msg);
    else
        snprintf(err, err_len, "%s: %s", origin, msg);
    return -EINVAL;
}

static bool s_hostname_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
        return false;
    if (strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") != n)
        return false;
    /* Labels 1..63 bytes, no empty label. */
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (++label > 63) {
            return false;
        }
    }
    return true;
}

static bool s_name_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-[]") == n;
}

static bool s_z85_key_valid(const char *k)
{
    return strlen(k) == S_Z85_KEY_LEN && strspn(k, s_z85) == S_Z85_KEY_LEN;
}

/* "host", "host:port", "[v6]" or "[v6]:port" into ret (host, port,
 * endpoint, default name). */
static int s_parse_address(const char *word, const char *origin, unsigned line, kt_host_t *ret,
                           char *err, size_t err_len)
{
    char host[256];
    const char *port_text = NULL;
    bool v6 = false;
    if (word[0] == '[') {
        const char *close = strchr(word, ']');
        if (!close)
            return s_fail(err, err_len, origin, line, "'%s': missing ']' after an IPv6 address",
                          word);
        size_t n = (size_t)(close - word - 1);
        if (n == 0 || n >= sizeof(host))
            return s_fail(err, err_len, origin, line, "'%s': empty or overlong IPv6 address", word);
        memcpy(host, word + 1, n);
        host[n] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return s_fail(err, err_len, origin, line, "'%s' is not an IPv6 address", host);
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0')
            return s_fail(err, err_len, origin, line, "'%s': expected ':PORT' after ']'", word);
        v6 = true;
    } else {
        const char *colon = strchr(word, ':');
        if (colon && strchr(colon + 1, ':'))
            return s_fail(err, err_len, origin, line,
                          "'%s': an IPv6 address goes in brackets: [ADDR]:PORT", word);
        size_t n = colon ? (size_t)(colon - word) : strlen(word);
        if (n == 0)
            return s_fail(err, err_len, origin, line, "'%s': missing host before ':'", word);
        if (n >= sizeof(host))
            return s_fail(err, err_len, origin, line, "host name longer than 253 bytes");
        memcpy(host, word, n);
        host[n] = '\0';
        if (!s_hostname_valid(host))
            return s_fail(err, err_len, origin, line,
                          "'%s' is not a host name or IPv4 address (letters, digits, '-', '.')",
                          host);
        if (colon)
            port_text = colon + 1;
    }
    unsigned long port = KT_DEFAULT_PORT;
    if (port_text) {
        char *end;
        errno = 0;
        if (*port_text == '\0' || strspn(port_text, "0123456789") != strlen(port_text))
            return s_fail(err, err_len, origin, line, "'%s': port '%s' is not a number", word,
                          port_text);
        port = strtoul(port_text, &end, 10);
        if (errno || port < 1 || port > 65535)
            return s_fail(err, err_len, origin, line, "'%s': port %s is out of range 1..65535",
                          word, port_text);
    }
    snprintf(ret->host, sizeof(ret->host), "%s", host);
    ret->port = (uint16_t)port;
    if (v6) {
        snprintf(ret->endpoint, sizeof(ret->endpoint), "tcp://[%s]:%lu", host, port);
        snprintf(ret->name, sizeof(ret->name), "[%.52s]:%lu", host, port);
    } else {
        snprintf(ret->endpoint, sizeof(ret->endpoint), "tcp://%s:%lu", host, port);
        snprintf(ret->name, sizeof(ret->name), "%.56s:%lu", host, port);
    }
    return 0;
}

/* Appends h to the array after checking it against the ones before. */
static int s_append(kt_host_t **arr, unsigned *n, unsigned *cap, const kt_host_t *h,
                    const char *origin, char *err, size_t err_len)
{
    for (unsigned i = 0; i < *n; i++) {
        const kt_host_t *o = &(*arr)[i];
        const char *where = o->line ? "line" : "entry";
        unsigned at = o->line ? o->line : i + 1;
        if (strcmp(o->endpoint, h->endpoint) == 0)
            return s_fail(err, err_len, origin, h->line, "endpoint %s is already listed (%s %u)",
                          h->endpoint, where, at);
        if (strcmp(o->name, h->name) == 0)
            return s_fail(err, err_len, origin, h->line, "name '%s' is already used (%s %u)",
                          h->name, where, at);
    }
    if (*n >= KT_HOSTS_MAX)
        return s_fail(err, err_len, origin, h->line, "more than %d workers", KT_HOSTS_MAX);
    if (*n == *cap) {
        unsigned ncap = *cap ? *cap * 2 : 8;
        kt_host_t *na = realloc(*arr, ncap * sizeof(*na));
        if (!na) {
            snprintf(err, err_len, "%s: out of memory", origin);
            return -ENOMEM;
        }
        *arr = na;
        *cap = ncap;
    }
    (*arr)[(*n)++] = *h;
    return 0;
}

/* One non-empty line (comment stripped), split on blanks. */
static int s_parse_line(char *text, const char *origin, unsigned line, kt_host_t *ret, char *err,
                        size_t err_len)
{
    memset(ret, 0, sizeof(*ret));
    ret->line = line;
    char *save = NULL;
    char *word = strtok_r(text, " \t\r", &save);
    int r = s_parse_address(word, origin, line, ret, err, err_len);
    if (r < 0)
        return r;
    bool seen_name = false, seen_key = false;
    while ((word = strtok_r(NULL, " \t\r", &save))) {
        char *eq = strchr(word, '=');
        if (!eq || eq == word)
            return s_fail(err, err_len, origin, line,
                          "'%s': expected key=value after the address (keys: name, key)", word);
        *eq = '\0';
        const char *value = eq + 1;
        if (strcmp(word, "name") == 0) {
            if (seen_name)
                return s_fail(err, err_len, origin, line, "name= given twice");
            if (!s_name_valid(value))
                return s_fail(err, err_len, origin, line,
                              "name '%s' is not valid (1 to 63 of A-Z a-z 0-9 _ . : - [ ])", value);
            snprintf(ret->name, sizeof(ret->name), "%s", value);
            seen_name = true;
        } else if (strcmp(word, "key") == 0) {
            if (seen_key)
                return s_fail(err, err_len, origin, line, "key= given twice");
            if (!s_z85_key_valid(value))
                return s_fail(err, err_len, origin, line,
                              "key '%.48s%s' is not a CURVE public key (40 Z85 characters, "
                              "as `ktstr-coord keygen` prints)",
                              value, strlen(value) > 48 ? "..." : "");
            snprintf(ret->curve_public, sizeof(ret->curve_public), "%s", value);
            seen_key = true;
        } else {
            return s_fail(err, err_len, origin, line, "unknown key '%.64s' (known: name, key)",
                          word);
        }
    }
    return 0;
}

int kt_hosts_parse(const char *text, size_t len, const char *origin, kt_host_t **ret,
                   unsigned *ret_n, char *err, size_t err_len)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!origin)
        origin = "<hosts>";
    if (!text || !ret || !ret_n)
        return -EINVAL;
    if (len > S_FILE_MAX) {
        snprintf(err, err_len, "%s: %zu bytes, larger than the limit of %u", origin, len,
                 S_FILE_MAX);
        return -EFBIG;
    }
    _cleanup_free_ kt_host_t *arr = NULL;
    unsigned n = 0, cap = 0, line = 0;
    size_t pos = 0;
    while (pos < len) {
        line++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - start) : len - pos;
        pos += llen + (nl ? 1 : 0);
        if (llen > S_LINE_MAX)
            return s_fail(err, err_len, origin, line, "line longer than %d bytes", S_LINE_MAX);
        char buf[S_LINE_MAX + 1];
        memcpy(buf, start, llen);
        buf[llen] = '\0';
        if (strlen(buf) != llen)
            return s_fail(err, err_len, origin, line, "contains a NUL byte");
        for (size_t i = 0; i < llen; i++) {
            unsigned char ch = (unsigned char)buf[i];
            if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch >= 0x7f)
                return s_fail(err, err_len, origin, line,
                              "column %zu: byte 0x%02x: only printable ASCII is allowed", i + 1,
                              ch);
        }
        /* A comment starts at a '#' that begins the line or follows a
         * blank: Z85 keys may hold '#'. */
        for (char *h = buf; (h = strchr(h, '#')); h++) {
            if (h == buf || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        }
        if (strspn(buf, " \t\r") == strlen(buf))
            continue;
        kt_host_t h;
        int r = s_parse_line(buf, origin, line, &h, err, err_len);
        if (r < 0)
            return r;
        if ((r = s_append(&arr, &n, &cap, &h, origin, err, err_len)) < 0)
            return r;
    }
    if (n == 0) {
        snprintf(err, err_len, "%s: no worker listed", origin);
        return -EINVAL;
    }
    *ret = TAKE_PTR(arr);
    *ret_n = n;
    return 0;
}

int kt_hosts_load(const char *path, kt_host_t **ret, unsigned *ret_n, char *err, size_t err_len)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = kt_read_file_reported(path, S_FILE_MAX, &buf, &len, err, err_len);
    if (r < 0)
        return r;
    return kt_hosts_parse(buf, len, path, ret, ret_n, err, err_len);
}

int kt_hosts_parse_list(const char *list, kt_host_t **ret, unsigned *ret_n, char *err,
                        size_t err_len)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!list || !ret || !ret_n)
        return -EINVAL;
    const char *origin = "--workers";
    _cleanup_free_ kt_host_t *arr = NULL;
    unsigned n = 0, cap = 0, idx = 0;
    const char *p = list;
    for (;;) {
        idx++;
        const char *comma = strchr(p, ',');
        size_t wlen = comma ? (size_t)(comma - p) : strlen(p);
        char word[S_LINE_MAX + 1];
        if (wlen == 0)
            return s_fail(err, err_len, origin, 0, "entry %u is empty", idx);
        if (wlen > S_LINE_MAX)
            return s_fail(err, err_len, origin, 0, "entry %u is longer than %d bytes", idx,
                          S_LINE_MAX);
        memcpy(word, p, wlen);
        word[wlen] = '\0';
        if (strpbrk(word, " \t\r\n="))
            return s_fail(err, err_len, origin, 0,
                          "entry %u '%s': expected host[:port] (use a hosts file for name= and "
                          "key=)",
                          idx, word);
        char what[32];
        snprintf(what, sizeof(what), "--workers entry %u", idx);
        kt_host_t h = {0};
        int r = s_parse_address(word, what, 0, &h, err, err_len);
        if (r < 0)
            return r;
        if ((r = s_append(&arr, &n, &cap, &h, origin, err, err_len)) < 0)
            return r;
        if (!comma)
            break;
        p = comma + 1;
    }
    *ret = TAKE_PTR(arr);
    *ret_n = n;
    return 0;
}
