/* hosts.txt and --workers lists: every accepted form lands in its fields,
 * and every malformed line is refused with "FILE:LINE: what". */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_hosts.h"

#define S_KEY "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"

static void test_accepted_forms(void **state)
{
    (void)state;
    const char *text = "# the lab\n"
                       "\n"
                       "   worker1.lab\n"
                       "10.0.0.2:7500 name=rack2 key=" S_KEY "   # trailing comment\n"
                       "[::1]:7462\n"
                       "[fd00::2]\n"
                       "\tlocalhost:1\t name=lo\r\n"
                       "198.51.100.3:65535";
    kt_host_t *h = NULL;
    unsigned n = 0;
    char err[256] = "";
    assert_int_equal(kt_hosts_parse(text, strlen(text), "hosts.txt", &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 6);
    assert_string_equal(h[0].host, "worker1.lab");
    assert_int_equal(h[0].port, KT_DEFAULT_PORT);
    assert_string_equal(h[0].endpoint, "tcp://worker1.lab:7461");
    assert_string_equal(h[0].name, "worker1.lab:7461");
    assert_string_equal(h[0].curve_public, "");
    assert_int_equal(h[0].line, 3);
    assert_string_equal(h[1].host, "10.0.0.2");
    assert_int_equal(h[1].port, 7500);
    assert_string_equal(h[1].endpoint, "tcp://10.0.0.2:7500");
    assert_string_equal(h[1].name, "rack2");
    assert_string_equal(h[1].curve_public, S_KEY);
    assert_int_equal(h[1].line, 4);
    assert_string_equal(h[2].host, "::1");
    assert_int_equal(h[2].port, 7462);
    assert_string_equal(h[2].endpoint, "tcp://[::1]:7462");
    assert_string_equal(h[2].name, "[::1]:7462");
    assert_string_equal(h[3].endpoint, "tcp://[fd00::2]:7461");
    assert_string_equal(h[4].endpoint, "tcp://localhost:1");
    assert_string_equal(h[4].name, "lo");
    assert_int_equal(h[4].line, 7);
    assert_int_equal(h[5].port, 65535);
    assert_int_equal(h[5].line, 8);
    free(h);

    /* Z85 keys may hold '#': only a '#' after a blank starts a comment. */
    const char *hashed = "w:1 key=ab#defghijklmnopqrstuvwxyz0123456789ABCD #comment\n"
                         "#w:2\n"
                         "w:3\t# comment\n";
    assert_int_equal(kt_hosts_parse(hashed, strlen(hashed), "h", &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(h[0].curve_public, "ab#defghijklmnopqrstuvwxyz0123456789ABCD");
    assert_int_equal(h[1].port, 3);
    free(h);
    /* ... and a name may not. */
    assert_int_equal(kt_hosts_parse("w:3 name=x#y\n", 13, "h", &h, &n, err, sizeof(err)), -EINVAL);
}

static void s_expect_error(const char *text, const char *want)
{
    kt_host_t *h = (kt_host_t *)0x1;
    unsigned n = 77;
    char err[512] = "";
    int r = kt_hosts_parse(text, strlen(text), "h.txt", &h, &n, err, sizeof(err));
    if (r != -EINVAL || strcmp(err, want) != 0)
        fail_msg("for '%s': r=%d err='%s', want '%s'", text, r, err, want);
    /* Outputs untouched on failure. */
    assert_ptr_equal(h, (kt_host_t *)0x1);
    assert_int_equal(n, 77);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    s_expect_error("a\nb:0\n", "h.txt:2: 'b:0': port 0 is out of range 1..65535");
    s_expect_error("b:65536", "h.txt:1: 'b:65536': port 65536 is out of range 1..65535");
    s_expect_error("b:99999999999999999999",
                   "h.txt:1: 'b:99999999999999999999': port 99999999999999999999 is out of "
                   "range 1..65535");
    s_expect_error("b:", "h.txt:1: 'b:': port '' is not a number");
    s_expect_error("b:7x", "h.txt:1: 'b:7x': port '7x' is not a number");
    s_expect_error("b:-1", "h.txt:1: 'b:-1': port '-1' is not a number");
    s_expect_error(":7461", "h.txt:1: ':7461': missing host before ':'");
    s_expect_error("\n\n::1", "h.txt:3: '::1': an IPv6 address goes in brackets: [ADDR]:PORT");
    s_expect_error("[::1", "h.txt:1: '[::1': missing ']' after an IPv6 address");
    s_expect_error("[zz::1]:3", "h.txt:1: 'zz::1' is not an IPv6 address");
    s_expect_error("[::1]x", "h.txt:1: '[::1]x': expected ':PORT' after ']'");
    s_expect_error("[]:1", "h.txt:1: '[]:1': empty or overlong IPv6 address");
    s_expect_error("bad_host", "h.txt:1: 'bad_host' is not a host name or IPv4 address "
                               "(letters, digits, '-', '.')");
    s_expect_error("a..b", "h.txt:1: 'a..b' is not a host name or IPv4 address "
                           "(letters, digits, '-', '.')");
    s_expect_error("a color=red", "h.txt:1: unknown key 'color' (known: name, key)");
    s_expect_error("a name", "h.txt:1: 'name': expected key=value after the address "
                             "(keys: name, key)");
    s_expect_error("a name=x name=y", "h.txt:1: name= given twice");
    s_expect_error("a name=", "h.txt:1: name '' is not valid (1 to 63 of A-Z a-z 0-9 _ . : - [ ])");
    s_expect_error("a key=short", "h.txt:1: key 'short' is not a CURVE public key (40 Z85 "
                                  "characters, as `ktstr-coord keygen` prints)");
    s_expect_error("a key=" S_KEY " key=" S_KEY, "h.txt:1: key= given twice");
    s_expect_error("a\n# x\nb\na:7461\n", "h.txt:4: endpoint tcp://a:7461 is already listed "
                                          "(line 1)");
    s_expect_error("a name=w\nb name=w\n", "h.txt:2: name 'w' is already used (line 1)");
    s_expect_error("a\nb\x01\n", "h.txt:2: column 2: byte 0x01: only printable ASCII is "
                                 "allowed");
    s_expect_error("a\n\xc3\xa9\n", "h.txt:2: column 1: byte 0xc3: only printable ASCII is "
                                    "allowed");
    s_expect_error("# nothing\n\n", "h.txt: no worker listed");
    s_expect_error("", "h.txt: no worker listed");
}

static void test_bounds(void **state)
{
    (void)state;
    /* A line over the limit. */
    char *line = malloc(2000);
    assert_non_null(line);
    memset(line, 'a', 1999);
    line[1999] = '\0';
    s_expect_error(line, "h.txt:1: line longer than 1024 bytes");
    free(line);

    /* Embedded NUL. */
    kt_host_t *h = NULL;
    unsigned n = 0;
    char err[256];
    assert_int_equal(kt_hosts_parse("a\0b\n", 4, "h.txt", &h, &n, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "h.txt:1: contains a NUL byte");

    /* KT_HOSTS_MAX workers are fine, one more is not. */
    size_t cap = (KT_HOSTS_MAX + 2) * 32;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t off = 0;
    for (unsigned i = 0; i <= KT_HOSTS_MAX; i++)
        off += (size_t)snprintf(text + off, cap - off, "w%u:%u\n", i, 1000 + i);
    assert_int_equal(kt_hosts_parse(text, off, "h.txt", &h, &n, err, sizeof(err)), -EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "h.txt:%u: more than %u workers", KT_HOSTS_MAX + 1, KT_HOSTS_MAX);
    assert_string_equal(err, want);
    /* Drop the last line: exactly the maximum. */
    text[off - 1] = '\0';
    char *cut = strrchr(text, '\n');
    assert_non_null(cut);
    assert_int_equal(
        kt_hosts_parse(text, (size_t)(cut - text + 1), "h.txt", &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, KT_HOSTS_MAX);
    free(h);
    free(text);

    /* Over the file size limit. */
    size_t big = (1u << 20) + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '\n', big);
    assert_int_equal(kt_hosts_parse(huge, big, "h.txt", &h, &n, err, sizeof(err)), -EFBIG);
    free(huge);
}

static void test_list(void **state)
{
    (void)state;
    kt_host_t *h = NULL;
    unsigned n = 0;
    char err[256] = "";
    assert_int_equal(
        kt_hosts_parse_list("127.0.0.1:7001,localhost,[::1]:9", &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(h[0].endpoint, "tcp://127.0.0.1:7001");
    assert_string_equal(h[1].endpoint, "tcp://localhost:7461");
    assert_string_equal(h[2].endpoint, "tcp://[::1]:9");
    assert_int_equal(h[0].line, 0);
    free(h);

    assert_int_equal(kt_hosts_parse_list("a,,b", &h, &n, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--workers: entry 2 is empty");
    assert_int_equal(kt_hosts_parse_list("a,b:0", &h, &n, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--workers entry 2: 'b:0': port 0 is out of range 1..65535");
    assert_int_equal(kt_hosts_parse_list("a:1,a:1", &h, &n, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--workers: endpoint tcp://a:1 is already listed (entry 1)");
    assert_int_equal(kt_hosts_parse_list("a name=x", &h, &n, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--workers: entry 1 'a name=x': expected host[:port] (use a hosts "
                             "file for name= and key=)");
    assert_int_equal(kt_hosts_parse_list("", &h, &n, err, sizeof(err)), -EINVAL);
}

static void test_load(void **state)
{
    (void)state;
    char path[] = "/tmp/kt-hosts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "w1:7001 name=one\nw2:7002\nw3:0\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    kt_host_t *h = NULL;
    unsigned n = 0;
    char err[512] = "";
    assert_int_equal(kt_hosts_load(path, &h, &n, err, sizeof(err)), -EINVAL);
    char want[600];
    snprintf(want, sizeof(want), "%s:3: 'w3:0': port 0 is out of range 1..65535", path);
    assert_string_equal(err, want);
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, 24), 24);
    close(fd);
    assert_int_equal(kt_hosts_load(path, &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(h[0].name, "one");
    free(h);
    unlink(path);
    assert_int_equal(kt_hosts_load(path, &h, &n, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_forms), cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_list),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
