/* clang-format off */
/* libFuzzer target for the YAML scenario reader (user input), and for the
 * resolution of whatever it accepts against a few topologies.
 *
 * Build and run from the repository root (not wired into meson):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon tests/fuzz/fuzz_scenario_yaml.c common/kt_scenario_yaml.c common/kt_yaml.c common/kt_scenario.c common/kt_topology.c common/kt_checks.c common/kt_checks_steps.c common/kt_timeline.c common/kt_fileio.c common/kt_payload.c -lfyaml -lm -o /tmp/fuzz_scenario_yaml
 *   mkdir -p /tmp/yaml-corpus && /tmp/fuzz_scenario_yaml -max_total_time=60 /tmp/yaml-corpus tests/fixtures/scenarios
 *
 * libfyaml itself is not instrumented: coverage guides through our code. */
/* clang-format on */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_scenario_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kt_scenario_t s;
    static kt_plan_t plan;
    char err[512];
    err[0] = '\0';
    int r = kt_scenario_yaml_parse((const char *)data, size, "fuzz.yaml", &s, err, sizeof(err));
    if (r < 0) {
        /* Every refusal names the input and says what is wrong, on one line. */
        if ((r != -EINVAL && r != -EFBIG) || strncmp(err, "fuzz.yaml", 9) != 0 ||
            strlen(err) < 12 || strchr(err, '\n'))
            abort();
        return 0;
    }
    if (s.n_cgroups < 1 || s.n_cgroups > KT_MAX_CGROUPS || s.n_faults > KT_MAX_FAULTS ||
        s.duration_ms == 0 || memchr(s.name, '\0', sizeof(s.name)) == NULL)
        abort();
    static const char *const topos[] = {"tiny-1llc", "smt-2llc", "numa2-4llc", "max-cpu"};
    for (size_t i = 0; i < sizeof(topos) / sizeof(topos[0]); i++) {
        kt_topology_t t;
        char why[256];
        if (kt_topology_parse(topos[i], &t) < 0)
            abort();
        if (kt_scenario_fits(&s, &t, why, sizeof(why)) < 0)
            continue;
        if (kt_scenario_resolve(&s, &t, 0, &plan, why, sizeof(why)) == 0 &&
            kt_plan_total_workers(&plan) > KT_MAX_WORKERS)
            abort();
    }
    return 0;
}
