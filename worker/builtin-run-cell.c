/* ktstr-worker run-cell: one cell in a VM on this host. Exit status 0 pass,
 * 1 fail, 2 error, 77 skip. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cli.h"
#include "kt_log.h"
#include "kt_runcell.h"
#include "kt_scenario_yaml.h"
#include "kt_sidecar.h"

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-worker run-cell --kernel PATH --topology PRESET|N,L,C,T\n"
            "           --scenario NAME|FILE.yaml [--scheduler PATH] [--sched-args \"ARGS\"]\n"
            "           [--duration SECS] [--out DIR] [--accel auto|kvm|tcg] [--machine q35|microvm]\n"
            "           [--work-type TYPE] [--boot-retries N] [--json] [-v]\n"
            "           [--payload PATH [--payload-args \"ARGS\"] [--payload-check EXPR]...\n"
            "            [--payload-timeout SECS] [--payload-judge exit|tap]\n"
            "            [--payload-tap-test NAME] [--payload-output BYTES]]\n"
            "Runs one cell and writes its *.ktstr.json sidecar into --out (default '.').\n"
            "--work-type runs every cgroup of the scenario with TYPE instead of its own\n"
            "(grouped types round counts from workers_per_cpu up to their group size).\n"
            "--payload runs a static binary in the guest as the workload (alone, or beside\n"
            "the --scenario's workers): its exit status must be 0 (or what exit==N says),\n"
            "its stdout's last JSON object gives metrics (\"a.b.c\"), and each check\n"
            "(METRIC>=N, METRIC<=N, METRIC=A..B, exit==N) must hold; --payload-judge tap\n"
            "judges its TAP lines instead (ok, not ok, # SKIP). Timeout default 60 s.\n"
            "A scenario file's `payload:` runs the same way; --payload replaces it whole.\n"
            "--boot-retries N (default %d): boot again when the VM never reached ktstr-init\n"
            "and the cause may be the host's (QEMU crashed, the kernel oopsed or hung).\n"
            "Built-in scenarios:",
            KT_RUNCELL_BOOT_RETRIES);
    unsigned n;
    const kt_scenario_t *b = kt_scenario_builtins(&n);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, " %s", b[i].name);
    fprintf(f, "\nWork types:");
    for (unsigned i = 0; i < KT_WORK__COUNT; i++)
        fprintf(f, " %s", kt_work_type_name((enum kt_work_type)i));
    fprintf(f, "\nExit status: 0 pass, 1 fail, 2 error, 77 skip.\n");
}

int builtin_run_cell(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kernel", required_argument, NULL, 'k'},   {"topology", required_argument, NULL, 't'},
        {"scenario", required_argument, NULL, 's'}, {"scheduler", required_argument, NULL, 'S'},
        {"sched-args", required_argument, NULL, 'a'}, {"duration", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},      {"accel", required_argument, NULL, 'A'},
        {"machine", required_argument, NULL, 'm'},  {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {"payload", required_argument, NULL, 'P'},
        {"work-type", required_argument, NULL, 'W'},
        {"payload-args", required_argument, NULL, 1000},
        {"payload-check", required_argument, NULL, 1001},
        {"payload-timeout", required_argument, NULL, 1002},
        {"payload-judge", required_argument, NULL, 1003},
        {"payload-tap-test", required_argument, NULL, 1004},
        {"payload-output", required_argument, NULL, 1005},
        {"boot-retries", required_argument, NULL, 1006},
        {NULL, 0, NULL, 0},
    };
    static kt_payload_spec_t payload;
    kt_payload_spec_init(&payload);
    const char *payload_args = NULL;
    char why[300];
    kt_cell_request_t req;
    kt_cell_request_init(&req);
    const char *topology = NULL, *scenario = NULL, *duration = NULL, *accel = "auto";
    bool json_out = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': req.kernel = optarg; break;
        case 't': topology = optarg; break;
        case 's': scenario = optarg; break;
        case 'S': req.scheduler = optarg; break;
        case 'a': req.sched_args = optarg; break;
        case 'd': duration = optarg; break;
        case 'o': req.out_dir = optarg; break;
        case 'A': accel = optarg; break;
        case 'm':
            if (strcmp(optarg, "q35") == 0)
                req.machine = KT_MACHINE_Q35;
            else if (strcmp(optarg, "microvm") == 0)
                req.machine = KT_MACHINE_MICROVM;
            else {
                fprintf(stderr, "run-cell: --machine: '%s' is not q35 or microvm\n", optarg);
                return 2;
            }
            break;
        case 'j': json_out = true; break;
        case 'P': req.payload_path = optarg; break;
        case 'W':
            if (kt_work_type_parse(optarg, &req.work_type) < 0) {
                fprintf(stderr, "run-cell: --work-type '%s': unknown (known:", optarg);
                for (unsigned i = 0; i < KT_WORK__COUNT; i++)
                    fprintf(stderr, " %s", kt_work_type_name((enum kt_work_type)i));
                fprintf(stderr, ")\n");
                return 2;
            }
            req.override_work = true;
            break;
        case 1000: payload_args = optarg; break;
        case 1006: {
            uint64_t n;
            if (kt_cli_parse_u64(optarg, 0, 9, &n) < 0) {
                fprintf(stderr, "run-cell: --boot-retries '%s': a number from 0 to 9\n", optarg);
                return 2;
            }
            req.boot_retries = (unsigned)n;
            break;
        }
        case 1001: {
            kt_payload_check_t pc;
            if (kt_payload_check_parse(optarg, &pc, why, sizeof(why)) < 0) {
                fprintf(stderr, "run-cell: --payload-check: %s\n", why);
                return 2;
            }
            if (kt_payload_check_add(&payload, &pc) < 0) {
                fprintf(stderr, "run-cell: --payload-check: more than %d checks\n",
                        KT_PAYLOAD_CHECKS_MAX);
                return 2;
            }
            break;
        }
        case 1002: {
            char *end;
            double secs = strtod(optarg, &end);
            if (*end || end == optarg || !(secs > 0) ||
                secs * 1000 > KT_PAYLOAD_TIMEOUT_MAX_MS) {
                fprintf(stderr, "run-cell: --payload-timeout '%s': expected seconds in (0, %u]\n",
                        optarg, KT_PAYLOAD_TIMEOUT_MAX_MS / 1000);
                return 2;
            }
            payload.timeout_ms = (uint32_t)(secs * 1000);
            break;
        }
        case 1003:
            if (strcmp(optarg, "exit") == 0)
                payload.judge = KT_PAYLOAD_JUDGE_EXIT;
            else if (strcmp(optarg, "tap") == 0)
                payload.judge = KT_PAYLOAD_JUDGE_TAP;
            else {
                fprintf(stderr, "run-cell: --payload-judge '%s': expected exit or tap\n", optarg);
                return 2;
            }
            break;
        case 1004:
            if (strlen(optarg) >= sizeof(payload.tap_test)) {
                fprintf(stderr, "run-cell: --payload-tap-test: longer than %zu bytes\n",
                        sizeof(payload.tap_test) - 1);
                return 2;
            }
            snprintf(payload.tap_test, sizeof(payload.tap_test), "%s", optarg);
            break;
        case 1005: {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || end == optarg || v < KT_PAYLOAD_OUTPUT_MIN || v > KT_PAYLOAD_OUTPUT_MAX) {
                fprintf(stderr, "run-cell: --payload-output '%s': expected %u..%u bytes\n", optarg,
                        KT_PAYLOAD_OUTPUT_MIN, KT_PAYLOAD_OUTPUT_MAX);
                return 2;
            }
            payload.max_output = (uint32_t)v;
            break;
        }
        case 'v': kt_log_set_level(KT_LOG_DEBUG); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "run-cell: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!req.kernel || !topology || (!scenario && !req.payload_path)) {
        fprintf(stderr, "run-cell: --kernel, --topology and --scenario (or --payload) are "
                        "required\n");
        s_usage(stderr);
        return 2;
    }
    if (req.override_work && !scenario) {
        fprintf(stderr, "run-cell: --work-type needs a --scenario whose cgroups it replaces\n");
        return 2;
    }
    if (!req.payload_path && (payload_args || payload.n_checks)) {
        fprintf(stderr, "run-cell: --payload-args and --payload-check need --payload PATH\n");
        return 2;
    }
    if (req.payload_path) {
        const char *base = strrchr(req.payload_path, '/');
        base = base ? base + 1 : req.payload_path;
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
            strlen(base) >= sizeof(payload.name)) {
            fprintf(stderr, "run-cell: --payload '%s': the file name must be 1..%zu bytes\n",
                    req.payload_path, sizeof(payload.name) - 1);
            return 2;
        }
        if (access(req.payload_path, R_OK | X_OK) != 0) {
            fprintf(stderr, "run-cell: --payload '%s': %m\n", req.payload_path);
            return 2;
        }
        snprintf(payload.name, sizeof(payload.name), "%s", base);
        if (kt_payload_args_split(&payload, payload_args, why, sizeof(why)) < 0) {
            fprintf(stderr, "run-cell: --payload-args: %s\n", why);
            return 2;
        }
        req.payload = &payload;
    }
    if (kt_topology_parse(topology, &req.topology) < 0) {
        fprintf(stderr,
                "run-cell: --topology '%s': not a preset name, N,L,C,T or a label like 1n2l2c1t "
                "(at most %d CPUs, LLCs a multiple of nodes)\n",
                topology, KT_MAX_CPUS);
        return 2;
    }
    if (kt_accel_parse(accel, &req.accel) < 0) {
        fprintf(stderr, "run-cell: --accel '%s': expected auto, kvm or tcg\n", accel);
        return 2;
    }
    if (duration) {
        uint32_t ms;
        /* A bare number is seconds here (the CLI says SECS). */
        char *end;
        double secs = strtod(duration, &end);
        if (*end == '\0' && end != duration) {
            if (!(secs > 0 && secs <= 86400)) {
                fprintf(stderr, "run-cell: --duration '%s': out of range\n", duration);
                return 2;
            }
            req.duration_ms = (uint32_t)(secs * 1000);
        } else if (kt_duration_parse_ms(duration, &ms) == 0 && ms > 0) {
            req.duration_ms = ms;
        } else {
            fprintf(stderr, "run-cell: --duration '%s': not a duration (e.g. 3, 3s, 500ms)\n",
                    duration);
            return 2;
        }
    }
    kt_scenario_t loaded;
    const kt_scenario_t *sc = scenario ? kt_scenario_builtin_find(scenario) : NULL;
    if (!sc && scenario) {
        char err[512];
        struct stat st;
        if (stat(scenario, &st) != 0 && !strchr(scenario, '/') && !strstr(scenario, ".yaml") &&
            !strstr(scenario, ".yml")) {
            fprintf(stderr, "run-cell: --scenario '%s': no built-in scenario and no such file\n",
                    scenario);
            return 2;
        }
        if (kt_scenario_yaml_load(scenario, &loaded, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        sc = &loaded;
    }
    /* The scenario file's payload, unless --payload replaces it whole. */
    if (sc && !req.payload_path && kt_payload_present(&sc->payload)) {
        if (access(sc->payload_binary, R_OK | X_OK) != 0) {
            fprintf(stderr, "run-cell: --scenario '%s': payload '%s': %m\n", scenario,
                    sc->payload_binary);
            return 2;
        }
        payload = sc->payload;
        req.payload_path = sc->payload_binary;
        req.payload = &payload;
    }
    req.scenario = sc;
    if (mkdir(req.out_dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "run-cell: --out '%s': %m\n", req.out_dir);
        return 2;
    }
    kt_cell_outcome_t out;
    int r = kt_runcell(&req, &out);
    if (json_out) {
        json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "verdict", out.verdict, "phase", out.phase,
                              "reason", out.reason, "sidecar", out.sidecar_path);
        json_dumpf(j, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(j);
    } else
        printf("%s %s%s%s/%s%s%s [%s] %s\n", out.verdict, sc ? sc->name : "",
               sc && req.payload ? "+" : "", req.payload ? payload.name : "", topology,
               req.scheduler ? " " : "", req.scheduler ? req.scheduler : "", out.phase,
               out.reason[0] ? out.reason : "all checks passed");
    if (r < 0) {
        fprintf(stderr, "run-cell: %s\n", out.reason);
        return 2;
    }
    return kt_verdict_exit_code(out.verdict);
}
