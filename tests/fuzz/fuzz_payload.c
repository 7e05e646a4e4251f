/* clang-format off */
/* libFuzzer target for what a payload cell reads from the payload's output
 * (any program's stdout) and from the command line: the JSON metrics
 * reader, the TAP scanner and the check expressions.
 *
 * Build and run from the repository root (not wired into meson):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_payload.c common/kt_payload.c -lm -o /tmp/fuzz_payload
 *   mkdir -p /tmp/payload-corpus && /tmp/fuzz_payload -max_total_time=60 -dict=tests/fuzz/payload.dict /tmp/payload-corpus tests/fuzz/corpus/payload
 *
 * The whole input is the output text; its first line (up to 63 bytes) is
 * also the TAP test name and a check expression.
 */
/* clang-format on */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    static kt_payload_metric_t m[KT_PAYLOAD_METRICS_MAX];
    unsigned n = KT_PAYLOAD_METRICS_MAX + 1;
    bool tr = false;
    int r = kt_payload_json_metrics(text, size, m, KT_PAYLOAD_METRICS_MAX, &n, &tr);
    /* 0 or -ENOENT; never more metrics than room; every one finite and named. */
    if ((r != 0 && n != 0) || n > KT_PAYLOAD_METRICS_MAX)
        abort();
    for (unsigned i = 0; i < n; i++)
        if (!isfinite(m[i].value) || !m[i].name[0] ||
            !memchr(m[i].name, '\0', sizeof(m[i].name)))
            abort();

    char first[64];
    size_t fl = 0;
    while (fl < size && fl < sizeof(first) - 1 && text[fl] != '\n' && text[fl] != '\0') {
        first[fl] = text[fl];
        fl++;
    }
    first[fl] = '\0';
    kt_payload_tap_t t;
    kt_payload_tap_scan(text, size, first, &t);
    if (t.status > KT_PAYLOAD_TAP_SKIP || !memchr(t.line, '\0', sizeof(t.line)))
        abort();
    kt_payload_tap_scan(text, size, NULL, &t);
    if (t.status == KT_PAYLOAD_TAP_NONE && (t.pass || t.fail || t.skip))
        abort();

    kt_payload_check_t c;
    char why[256], back[160];
    if (kt_payload_check_parse(first, &c, why, sizeof(why)) == 0) {
        /* What parses formats to text that parses to the same check. */
        kt_payload_check_format(&c, back, sizeof(back));
        kt_payload_check_t again;
        if (kt_payload_check_parse(back, &again, why, sizeof(why)) != 0 ||
            again.kind != c.kind || strcmp(again.metric, c.metric) != 0 || again.lo != c.lo ||
            again.hi != c.hi)
            abort();
    }
    kt_payload_spec_t s;
    kt_payload_spec_init(&s);
    if (kt_payload_args_split(&s, first, why, sizeof(why)) == 0)
        for (unsigned i = 0; i < s.n_args; i++)
            if (!kt_payload_arg(&s, i))
                abort();
    return 0;
}
