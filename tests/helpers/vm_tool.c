/* kt-vm-tool: boots one VM through the worker's runner (kt_vm_run) and
 * prints the outcome, for integration tests and for measuring boots by hand.
 *
 *   kt-vm-tool --kernel BZIMAGE --initrd IMG --workdir DIR [options]
 *
 * Without --cell-type / --cell-file the guest gets {"t":"shutdown"} after its
 * hello (the canary path). Exit status: 0 when the VM reached the end of its
 * last phase (DONE), 1 when it did not (timeout, QEMU exit, bad guest), 2 for
 * usage errors, 3 when the VM could not be started. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_topology.h"
#include "kt_vm.h"

#define S_CELL_FILE_MAX (16u << 20)

static bool s_verbose_msgs;

static int s_on_message(void *userdata, const char *type, const void *body, size_t len)
{
    unsigned *count = userdata;
    (*count)++;
    if (s_verbose_msgs) {
        printf("message t=%s bytes=%zu\n", type, len);
        fflush(stdout);
    }
    return 0;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: kt-vm-tool --kernel BZIMAGE --workdir DIR [--initrd IMG]\n"
               "         [--topology PRESET|LABEL|N,L,C,T] [--memory MIB] [--accel kvm|tcg]\n"
               "         [--machine q35|microvm] [--append TEXT] [--qemu PATH]\n"
               "         [--cell-type T | --cell-file MSGPACK] [--boot-timeout MS]\n"
               "         [--run-timeout MS] [--collect-timeout MS] [--heartbeat-timeout MS]\n"
               "         [--messages] [--json] [--print-argv]\n");
}

static int s_parse_u32(const char *opt, const char *s, uint32_t *ret)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || end == s || v > UINT32_MAX || s[0] == '-') {
        fprintf(stderr, "kt-vm-tool: %s: '%s' is not a number of at most %u\n", opt, s, UINT32_MAX);
        return -EINVAL;
    }
    *ret = (uint32_t)v;
    return 0;
}

/* Caller owns *ret. */
static int s_read_file(const char *path, void **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)S_CELL_FILE_MAX)
        return -EFBIG;
    _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    *ret = TAKE_PTR(buf);
    *ret_len = got;
    return 0;
}

static void s_status(int st, char *buf, size_t len)
{
    if (st < 0)
        snprintf(buf, len, "not reaped");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "0x%x", (unsigned)st);
}

int main(int argc, char **argv)
{
    enum {
        OPT_KERNEL = 256,
        OPT_INITRD,
        OPT_WORKDIR,
        OPT_TOPO,
        OPT_MEM,
        OPT_ACCEL,
        OPT_MACHINE,
        OPT_APPEND,
        OPT_QEMU,
        OPT_CELL_TYPE,
        OPT_CELL_FILE,
        OPT_BOOT,
        OPT_RUN,
        OPT_COLLECT,
        OPT_HB,
        OPT_MSGS,
        OPT_JSON,
        OPT_ARGV,
        OPT_HELP,
    };
    static const struct option opts[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"workdir", required_argument, NULL, OPT_WORKDIR},
        {"topology", required_argument, NULL, OPT_TOPO},
        {"memory", required_argument, NULL, OPT_MEM},
        {"accel", required_argument, NULL, OPT_ACCEL},
        {"machine", required_argument, NULL, OPT_MACHINE},
        {"append", required_argument, NULL, OPT_APPEND},
        {"qemu", required_argument, NULL, OPT_QEMU},
        {"cell-type", required_argument, NULL, OPT_CELL_TYPE},
        {"cell-file", required_argument, NULL, OPT_CELL_FILE},
        {"boot-timeout", required_argument, NULL, OPT_BOOT},
        {"run-timeout", required_argument, NULL, OPT_RUN},
        {"collect-timeout", required_argument, NULL, OPT_COLLECT},
        {"heartbeat-timeout", required_argument, NULL, OPT_HB},
        {"messages", no_argument, NULL, OPT_MSGS},
        {"json", no_argument, NULL, OPT_JSON},
        {"print-argv", no_argument, NULL, OPT_ARGV},
        {"help", no_argument, NULL, OPT_HELP},
        {0},
    };
    kt_vm_config_t cfg;
    kt_vm_config_init(&cfg);
    cfg.topology = (kt_topology_t){1, 1, 2, 1};
    bool json = false, print_argv = false, mem_given = false;
    const char *cell_type = NULL, *cell_file = NULL;
    uint32_t mem = 0;
    int c, r;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_KERNEL:
            cfg.kernel = optarg;
            break;
        case OPT_INITRD:
            cfg.initrd = optarg;
            break;
        case OPT_WORKDIR:
            cfg.workdir = optarg;
            break;
        case OPT_TOPO:
            r = kt_topology_parse(optarg, &cfg.topology);
            if (r < 0) {
                fprintf(stderr, "kt-vm-tool: --topology: '%s' is not a preset or shape: %s\n",
                        optarg, strerror(-r));
                return 2;
            }
            break;
        case OPT_MEM:
            if (s_parse_u32("--memory", optarg, &mem) < 0)
                return 2;
            mem_given = true;
            break;
        case OPT_ACCEL:
            if (kt_accel_parse(optarg, &cfg.accel) < 0 || cfg.accel == KT_ACCEL_AUTO) {
                fprintf(stderr, "kt-vm-tool: --accel: '%s' is not kvm or tcg\n", optarg);
                return 2;
            }
            break;
        case OPT_MACHINE:
            if (kt_machine_parse(optarg, &cfg.machine) < 0) {
                fprintf(stderr, "kt-vm-tool: --machine: '%s' is not q35 or microvm\n", optarg);
                return 2;
            }
            break;
        case OPT_APPEND:
            cfg.cmdline_extra = optarg;
            break;
        case OPT_QEMU:
            cfg.qemu = optarg;
            break;
        case OPT_CELL_TYPE:
            cell_type = optarg;
            break;
        case OPT_CELL_FILE:
            cell_file = optarg;
            break;
        case OPT_BOOT:
            if (s_parse_u32("--boot-timeout", optarg, &cfg.boot_timeout_ms) < 0)
                return 2;
            break;
        case OPT_RUN:
            if (s_parse_u32("--run-timeout", optarg, &cfg.run_timeout_ms) < 0)
                return 2;
            break;
        case OPT_COLLECT:
            if (s_parse_u32("--collect-timeout", optarg, &cfg.collect_timeout_ms) < 0)
                return 2;
            break;
        case OPT_HB:
            if (s_parse_u32("--heartbeat-timeout", optarg, &cfg.heartbeat_timeout_ms) < 0)
                return 2;
            break;
        case OPT_MSGS:
            s_verbose_msgs = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_ARGV:
            print_argv = true;
            break;
        case OPT_HELP:
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kt-vm-tool: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!cfg.kernel || !cfg.workdir) {
        fprintf(stderr, "kt-vm-tool: --kernel and --workdir are required\n");
        s_usage(stderr);
        return 2;
    }
    cfg.memory_mib = mem_given ? mem : kt_topology_memory_mib(&cfg.topology, 0);

    if (print_argv) {
        char **qargv = NULL;
        r = kt_vm_build_argv(&cfg, "CHAN.sock", "QMP.sock", &qargv);
        if (r < 0) {
            fprintf(stderr, "kt-vm-tool: invalid VM configuration: %s\n", strerror(-r));
            return 2;
        }
        for (char **p = qargv; *p; p++)
            printf("%s\n", *p);
        kt_vm_argv_free(&qargv);
        return 0;
    }

    _cleanup_free_ void *cell = NULL;
    size_t cell_len = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (cell_file) {
        r = s_read_file(cell_file, &cell, &cell_len);
        if (r < 0) {
            fprintf(stderr, "kt-vm-tool: --cell-file '%s': %s\n", cell_file, strerror(-r));
            return 2;
        }
    } else if (cell_type) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "t", 1);
        msgpack_pack_str(&pk, strlen(cell_type));
        msgpack_pack_str_body(&pk, cell_type, strlen(cell_type));
    }
    if (cell) {
        cfg.cell_msg = cell;
        cfg.cell_msg_len = cell_len;
    } else if (cell_type) {
        cfg.cell_msg = sb.data;
        cfg.cell_msg_len = sb.size;
    }

    unsigned messages = 0;
    cfg.on_message = s_on_message;
    cfg.userdata = &messages;
    kt_vm_outcome_t out;
    r = kt_vm_run(&cfg, &out);
    msgpack_sbuffer_destroy(&sb);
    char st[32];
    s_status(out.qemu_status, st, sizeof(st));
    if (json) {
        json_t *o = json_pack(
            "{s:s, s:b, s:b, s:b, s:b, s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:s, s:s, s:s}",
            "reached", kt_vm_phase_name(out.reached), "timed_out", out.timed_out, "got_hello",
            out.got_hello, "got_result", out.got_result, "qemu_exited_early", out.qemu_exited_early,
            "qemu_status", st, "error", out.error, "error_text", out.error_text, "vm_state",
            out.vm_state, "start_ms", (json_int_t)out.start_ms, "boot_ms", (json_int_t)out.boot_ms,
            "run_ms", (json_int_t)out.run_ms, "collect_ms", (json_int_t)out.collect_ms, "messages",
            (int)messages, "qemu_message", out.qemu_message, "console_path", out.console_path,
            "console_tail", out.console_tail);
        if (o) {
            json_dumpf(o, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(o);
        }
    } else {
        printf("reached=%s timed_out=%d got_hello=%d got_result=%d qemu=%s error=%d "
               "start_ms=%llu boot_ms=%llu run_ms=%llu collect_ms=%llu messages=%u\n",
               kt_vm_phase_name(out.reached), out.timed_out, out.got_hello, out.got_result, st,
               out.error, (unsigned long long)out.start_ms, (unsigned long long)out.boot_ms,
               (unsigned long long)out.run_ms, (unsigned long long)out.collect_ms, messages);
        if (out.error_text[0])
            printf("error_text=%s\n", out.error_text);
        if (out.reached != KT_VM_PHASE_DONE && out.console_tail[0])
            printf("--- console tail ---\n%s\n--- end ---\n", out.console_tail);
    }
    if (r < 0)
        return 3;
    return out.reached == KT_VM_PHASE_DONE ? 0 : 1;
}
