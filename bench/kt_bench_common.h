/* What the fleet benchmarks (bench-dispatch, bench-scale) share: the clock,
 * a synthetic run of identical cells whose kernel is a random file (the
 * null and sleep executors never read it, but a worker still fetches and
 * verifies it by sha256), the dispatcher's settings, the fleet sizes
 * option, and their scratch files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kt_coord.h"
#include "kt_dispatch.h"
#include "kt_hosts.h"

/* Set by kt_bench_init: the program's name for messages, and --verbose. */
extern const char *kt_bench_prog;
extern bool kt_bench_verbose;

/* The answer of a bench's getopt switch to what is not its own option:
 * 'v' (--verbose) sets *verbose and returns -1 (go on); 'h' (--help)
 * prints usage on stdout and returns 0; anything else prints it on stderr
 * and returns 2. Returns the exit status otherwise. */
int kt_bench_opt(int c, void (*usage)(FILE *f), bool *verbose);

/* After the options: an argument left over (optind < argc) prints usage on
 * stderr and returns 2; else sets the log ident (prog), only warnings
 * unless verbose, and returns 0. */
int kt_bench_init(const char *prog, bool verbose, int optind_, int argc,
                  void (*usage)(FILE *f));

uint64_t kt_bench_now_ns(void);

/* The dispatcher's `note` event: "# note: ..." on stderr with --verbose. */
__attribute__((format(printf, 2, 3))) void kt_bench_note(void *ud, const char *fmt, ...);

/* Writes 64 KiB of random bytes to a new file path: the runs' kernel.
 * Returns 0 or -errno. */
int kt_bench_write_kernel(const char *path);

/* A run of n identical 1-vCPU cells (steady on 1,1,1,1, EEVDF), each
 * estimated at est_ms, with kernel as its one kernel. Returns 0 or
 * -errno; kt_bench_run_clear frees it either way. */
int kt_bench_make_run(kt_coord_run_t *run, unsigned n, const char *run_id, const char *kernel,
                      uint32_t est_ms);
void kt_bench_run_clear(kt_coord_run_t *run);

/* The dispatcher as the benches drive it: the coordinator's defaults
 * (heartbeat 1 s, lost after 5 s, 3 attempts), no store, no events yet. */
kt_dispatch_config_t kt_bench_dispatch_config(const kt_host_t *hosts, unsigned n_hosts,
                                              uint32_t no_worker_timeout_ms);

/* --workers: fleet sizes "1,4,16", at most max of them, each 1..max_k.
 * Returns 0 or -EINVAL. */
int kt_bench_parse_sizes(const char *text, unsigned max_k, unsigned *ks, unsigned max,
                         unsigned *ret_n);

/* Removes dir and everything below it, as far as it can. */
void kt_bench_rm_rf(const char *dir);
