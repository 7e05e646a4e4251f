/* Kernel builds without building: the required-option check on synthetic
 * .config files, the fragment hash (normalised, recipe-salted, known
 * values), the ELF probes on real binaries, and kt_kbuild_run's refusals
 * of bad input before any command runs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_kbuild.h"

static char s_dir[] = "/tmp/ktstr-test-kbuild.XXXXXX";

/* A section this test binary carries, for kt_kbuild_elf_has_section. */
__attribute__((section(".kt_probe"), used)) static const char s_probe[] = "probe";

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A path under s_dir, from a ring of four buffers: copy one that must
 * outlive three more calls. */
static char *s_path(const char *name)
{
    static char p[4][256];
    static unsigned i;
    char *r = p[i++ % 4];
    snprintf(r, 256, "%s/%s", s_dir, name);
    return r;
}

/* A .config with every required option satisfied, leaving out skip (or
 * none), writing extra at the end. Caller frees. */
static char *s_config(const char *skip, const char *extra)
{
    size_t n;
    const kt_kbuild_option_t *req = kt_kbuild_required(&n);
    size_t cap = 16384, len = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    len += (size_t)snprintf(t, cap, "#\n# Automatically generated file; DO NOT EDIT.\n#\n");
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(req[i].name, skip) == 0)
            continue;
        if (req[i].min)
            len += (size_t)snprintf(t + len, cap - len, "CONFIG_%s=%ld\n", req[i].name,
                                    req[i].min * 2);
        else
            len += (size_t)snprintf(t + len, cap - len, "CONFIG_%s=y\n", req[i].name);
        /* Neighbours sharing a prefix must not stand in for the option. */
        len += (size_t)snprintf(t + len, cap - len, "CONFIG_%s_EXTRA=y\n", req[i].name);
    }
    snprintf(t + len, cap - len, "%s", extra ? extra : "");
    return t;
}

static int s_check(const char *text, char *err, size_t len)
{
    const char *p = s_path("config");
    s_write(p, text);
    return kt_kbuild_check_config(p, err, len);
}

static void t_required_table(void **state)
{
    size_t n;
    const kt_kbuild_option_t *req = kt_kbuild_required(&n);
    assert_true(n >= 20);
    static const char *const must[] = {"SCHED_CLASS_EXT", "BPF",      "BPF_SYSCALL", "BPF_JIT",
                                       "DEBUG_INFO_BTF",  "CGROUPS",  "CPUSETS",     "CGROUP_SCHED",
                                       "SCHEDSTATS",      "VIRTIO_CONSOLE", "VIRTIO_PCI",
                                       "BLK_DEV_INITRD",  "RD_LZ4",   "SMP",         "NUMA"};
    for (size_t m = 0; m < sizeof(must) / sizeof(must[0]); m++) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(req[i].name, must[m]) == 0 && req[i].min == 0;
        if (!found)
            fail_msg("CONFIG_%s is not required", must[m]);
    }
}

static void t_config_complete(void **state)
{
    char err[2048];
    char *t = s_config(NULL, "# CONFIG_UNRELATED is not set\nCONFIG_X=\"a=b\"\n");
    assert_int_equal(s_check(t, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    free(t);
}

/* Each required option, left out alone, is named. */
static void t_config_each_missing(void **state)
{
    size_t n;
    const kt_kbuild_option_t *req = kt_kbuild_required(&n);
    for (size_t i = 0; i < n; i++) {
        char err[2048], want[128];
        char *t = s_config(req[i].name, NULL);
        assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
        snprintf(want, sizeof(want), "CONFIG_%s ", req[i].name);
        if (!strstr(err, want))
            fail_msg("missing CONFIG_%s not named: %s", req[i].name, err);
        assert_non_null(strstr(err, req[i].why));
        assert_non_null(strstr(err, s_path("config")));
        free(t);
    }
}

static void t_config_not_set_and_module(void **state)
{
    char err[2048];
    /* "is not set" is absence; =m is not =y (the guest has no modules);
     * a later line wins as in Kconfig. */
    char *t = s_config("SCHED_CLASS_EXT", "# CONFIG_SCHED_CLASS_EXT is not set\n"
                                          "CONFIG_VIRTIO_CONSOLE=m\n");
    assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "CONFIG_SCHED_CLASS_EXT (sched_ext)"));
    assert_non_null(strstr(err, "CONFIG_VIRTIO_CONSOLE=m, not y"));
    assert_null(strstr(err, "CONFIG_BPF "));
    free(t);
}

static void t_config_several_named(void **state)
{
    char err[2048];
    size_t n;
    const kt_kbuild_option_t *req = kt_kbuild_required(&n);
    /* Only the =y ones, none of the integers: every bool named, in order. */
    char t[16384];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        if (req[i].min)
            len += (size_t)snprintf(t + len, sizeof(t) - len, "CONFIG_%s=%ld\n", req[i].name,
                                    req[i].min);
    assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
    const char *prev = err;
    for (size_t i = 0; i < n; i++) {
        if (req[i].min)
            continue;
        char want[96];
        snprintf(want, sizeof(want), " CONFIG_%s (", req[i].name);
        const char *at = strstr(prev, want);
        if (!at)
            fail_msg("CONFIG_%s not named after the previous one: %s", req[i].name, err);
        prev = at;
    }
}

static void t_config_nr_cpus(void **state)
{
    char err[2048];
    char *t = s_config(NULL, "CONFIG_NR_CPUS=32\n");
    assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "CONFIG_NR_CPUS=32, need >= 64"));
    free(t);
    t = s_config(NULL, "CONFIG_NR_CPUS=lots\n");
    assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "CONFIG_NR_CPUS=lots"));
    free(t);
    t = s_config("NR_CPUS", NULL);
    assert_int_equal(s_check(t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "CONFIG_NR_CPUS >= 64"));
    free(t);
    t = s_config(NULL, "CONFIG_NR_CPUS=512\n");
    assert_int_equal(s_check(t, err, sizeof(err)), 0);
    free(t);
}

/* A small err buffer is truncated, never overrun. */
static void t_config_small_err(void **state)
{
    char err[48 + 8];
    memset(err, 'Z', sizeof(err));
    assert_int_equal(s_check("", err, 48), -EINVAL);
    assert_int_equal(strlen(err), 47);
    assert_int_equal(err[49], 'Z');
}

static void t_config_unreadable(void **state)
{
    char err[512];
    assert_int_equal(kt_kbuild_check_config(s_path("nope"), err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, s_path("nope")));
}

static void t_kconfig_hash(void **state)
{
    char err[512], h1[65], h2[65], h3[65];
    s_write(s_path("a.kconfig"), "# a comment\nCONFIG_SMP=y   \n\n  CONFIG_NR_CPUS=64\n"
                                 "# CONFIG_FOO is not set\n");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("a.kconfig"), h1, err, sizeof(err)), 0);
    /* sha256 of the recipe line and the three normalised lines, computed
     * with sha256sum. */
    assert_string_equal(h1, "0047b54b411b89b61ee99ef21aa08fc722aa2c0bf84437a21e6bb94e5af1f64e");
    /* Comments, blanks and spacing change nothing... */
    s_write(s_path("b.kconfig"), "CONFIG_SMP=y\n# other words\nCONFIG_NR_CPUS=64\r\n"
                                 "   # CONFIG_FOO is not set");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("b.kconfig"), h2, err, sizeof(err)), 0);
    assert_string_equal(h1, h2);
    /* ...a value, an unset option, or the order does. */
    s_write(s_path("c.kconfig"), "CONFIG_SMP=y\nCONFIG_NR_CPUS=128\n# CONFIG_FOO is not set\n");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("c.kconfig"), h3, err, sizeof(err)), 0);
    assert_string_not_equal(h1, h3);
    s_write(s_path("c.kconfig"), "CONFIG_SMP=y\nCONFIG_NR_CPUS=64\n");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("c.kconfig"), h3, err, sizeof(err)), 0);
    assert_string_not_equal(h1, h3);
    s_write(s_path("c.kconfig"), "CONFIG_NR_CPUS=64\nCONFIG_SMP=y\n# CONFIG_FOO is not set\n");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("c.kconfig"), h3, err, sizeof(err)), 0);
    assert_string_not_equal(h1, h3);
    /* An empty fragment hashes the recipe alone. */
    s_write(s_path("c.kconfig"), "# nothing\n");
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("c.kconfig"), h3, err, sizeof(err)), 0);
    assert_string_equal(h3, "c1b7c88732551871538c842869b3948c2c7acef903b3919d53ccebe12ec1fbd3");
}

static void t_kconfig_hash_errors(void **state)
{
    char err[512], h[65];
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("nope"), h, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, s_path("nope")));
    assert_int_equal(kt_kbuild_kconfig_hash(s_dir, h, err, sizeof(err)), -EINVAL);
    FILE *f = fopen(s_path("big.kconfig"), "w");
    assert_non_null(f);
    for (int i = 0; i < 70000; i++)
        fputs("CONFIG_PADDING=y\n", f);
    fclose(f);
    assert_int_equal(kt_kbuild_kconfig_hash(s_path("big.kconfig"), h, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "1 MiB"));
}

/* The product's own fragment hashes and asks for every =y option the
 * check requires (so a fragment edit cannot drop one unnoticed). */
static void t_product_fragment(void **state)
{
    char err[512], h[65];
    const char *frag = KT_FIXTURES "/../../deploy/ktstr.kconfig";
    assert_int_equal(kt_kbuild_kconfig_hash(frag, h, err, sizeof(err)), 0);
    FILE *f = fopen(frag, "r");
    assert_non_null(f);
    static char text[65536];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    size_t n;
    const kt_kbuild_option_t *req = kt_kbuild_required(&n);
    for (size_t i = 0; i < n; i++) {
        char want[96];
        if (req[i].min)
            snprintf(want, sizeof(want), "\nCONFIG_%s=", req[i].name);
        else
            snprintf(want, sizeof(want), "\nCONFIG_%s=y\n", req[i].name);
        if (!strstr(text, want))
            fail_msg("deploy/ktstr.kconfig does not set CONFIG_%s", req[i].name);
    }
}

static void t_elf_probes(void **state)
{
    /* This test is a dynamic executable with a .kt_probe section. */
    assert_int_equal(kt_kbuild_elf_is_static("/proc/self/exe"), 0);
    assert_int_equal(kt_kbuild_elf_has_section("/proc/self/exe", ".kt_probe"), 1);
    assert_int_equal(kt_kbuild_elf_has_section("/proc/self/exe", ".text"), 1);
    assert_int_equal(kt_kbuild_elf_has_section("/proc/self/exe", ".BTF"), 0);
    assert_int_equal(kt_kbuild_elf_has_section("/proc/self/exe", ".kt_prob"), 0);
    (void)s_probe;
    /* Not ELF, truncated ELF, missing file, a directory. */
    s_write(s_path("text"), "#!/bin/sh\necho hi\n");
    assert_int_equal(kt_kbuild_elf_is_static(s_path("text")), -ENOEXEC);
    assert_int_equal(kt_kbuild_elf_has_section(s_path("text"), ".BTF"), -ENOEXEC);
    s_write(s_path("short"), "\177ELF\002\001\001");
    assert_int_equal(kt_kbuild_elf_is_static(s_path("short")), -ENOEXEC);
    assert_int_equal(kt_kbuild_elf_is_static(s_path("nope")), -ENOENT);
    assert_int_equal(kt_kbuild_elf_is_static(s_dir), -EINVAL);
}

/* Static binaries that are on this machine: busybox-static (deploy/setup.sh
 * installs it) and the fixture's schedulers when present. */
static void t_elf_static(void **state)
{
    static const char *const cands[] = {"/bin/busybox",
                                        KT_FIXTURES "/../../../shared/kernels/sched-ext-6.12.117/bin/"
                                               "scx_simple"};
    unsigned seen = 0;
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        if (access(cands[i], R_OK) != 0)
            continue;
        assert_int_equal(kt_kbuild_elf_is_static(cands[i]), 1);
        seen++;
    }
    if (seen == 0)
        skip();
}

static void t_run_refuses(void **state)
{
    char err[1024];
    kt_kbuild_result_t res = {.n_sched_progs = 7};
    const char *frag = KT_FIXTURES "/../../deploy/ktstr.kconfig";
    /* Not a kernel tree. */
    char src[256], out[256], no_out[256], no_frag[256];
    snprintf(src, sizeof(src), "%s", s_path("src"));
    snprintf(out, sizeof(out), "%s", s_path("out"));
    snprintf(no_out, sizeof(no_out), "%s", s_path("no-out"));
    snprintf(no_frag, sizeof(no_frag), "%s", s_path("no.kconfig"));
    mkdir(src, 0755);
    mkdir(out, 0755);
    kt_kbuild_opts_t o = {.source_dir = src, .out_dir = out, .kconfig = frag};
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "not a kernel source tree"));
    assert_int_equal(res.n_sched_progs, 7);
    /* A tree configured in place. */
    mkdir(s_path("src/scripts"), 0755);
    mkdir(s_path("src/scripts/kconfig"), 0755);
    s_write(s_path("src/Kconfig"), "");
    s_write(s_path("src/Makefile"), "");
    s_write(s_path("src/scripts/kconfig/merge_config.sh"), "");
    s_write(s_path("src/.config"), "CONFIG_SMP=y\n");
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "mrproper"));
    unlink(s_path("src/.config"));
    /* A staging dir that is not empty, or missing; a missing fragment. */
    s_write(s_path("out/leftover"), "x");
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -ENOTEMPTY);
    assert_non_null(strstr(err, "leftover"));
    unlink(s_path("out/leftover"));
    o.out_dir = no_out;
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "staging dir"));
    o.out_dir = out;
    o.kconfig = no_frag;
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "no.kconfig"));
    assert_int_equal(res.n_sched_progs, 7);
    /* Nothing was written into the staging dir by the refusals. */
    assert_int_equal(rmdir(out), 0);
}

/* A fake kernel tree whose Makefile honours O= as kbuild does and whose
 * bzImage target fails after 50 lines; tools the preflight looks for but
 * the fake never runs are stubs on PATH. Returns false (skip) without a
 * real make. */
static bool s_fake_tree(const char *src, const char *fakebin)
{
    if (system("command -v make > /dev/null 2>&1") != 0)
        return false;
    char p[512];
    mkdir(src, 0755);
    snprintf(p, sizeof(p), "%s/scripts", src);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/scripts/kconfig", src);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/Kconfig", src);
    s_write(p, "# fake\n");
    snprintf(p, sizeof(p), "%s/Makefile", src);
    s_write(p, "tinyconfig:\n\t@test -n \"$(O)\" && echo CONFIG_TINY=y > $(O)/.config\n"
               "olddefconfig:\n\t@test -n \"$(O)\" && touch $(O)/olddefconfig.ran\n"
               "bzImage:\n\t@for i in $$(seq 1 50); do echo \"fake build line $$i\"; done; "
               "exit 2\n");
    snprintf(p, sizeof(p), "%s/scripts/kconfig/merge_config.sh", src);
    /* -m -O OBJ .config FRAGMENT, run in OBJ */
    s_write(p, "#!/bin/sh\npwd > \"$3/merge.cwd\"\ncat \"$5\" >> \"$4\"\n");
    chmod(p, 0755);
    mkdir(fakebin, 0755);
    static const char *const stubs[] = {"flex", "bison", "bc", "pahole", "clang-19"};
    for (size_t i = 0; i < sizeof(stubs) / sizeof(stubs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", fakebin, stubs[i]);
        s_write(p, "#!/bin/sh\nexit 0\n");
        chmod(p, 0755);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s:%s", fakebin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    return true;
}

/* A failing build: configured out of tree, checked, then bzImage fails and
 * err carries the step and the log's last 40 lines; build.log stays, the
 * object dir goes, the tree is not written to. */
static void t_run_fake_tree(void **state)
{
    char src[256], bin[256], out[256], p[512], err[8192];
    snprintf(src, sizeof(src), "%s", s_path("fake-src"));
    snprintf(bin, sizeof(bin), "%s", s_path("fake-bin"));
    snprintf(out, sizeof(out), "%s", s_path("fake-out"));
    if (!s_fake_tree(src, bin))
        skip();
    mkdir(out, 0755);
    kt_kbuild_opts_t o = {.source_dir = src, .out_dir = out, .jobs = 1, .quiet = true,
                          .kconfig = KT_FIXTURES "/../../deploy/ktstr.kconfig"};
    kt_kbuild_result_t res = {.n_sched_progs = 7};
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -ECHILD);
    assert_int_equal(res.n_sched_progs, 7);
    assert_non_null(strstr(err, "make bzImage failed"));
    assert_non_null(strstr(err, "exited with status 2"));
    assert_non_null(strstr(err, "build.log"));
    assert_non_null(strstr(err, "fake build line 50"));
    assert_null(strstr(err, "fake build line 5\n"));
    /* 40 lines: the end of the build's output and make's error lines. */
    const char *tail = strstr(err, "build.log':\n");
    assert_non_null(tail);
    unsigned lines = 1;
    for (const char *c = tail + strlen("build.log':\n"); *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 40);
    snprintf(p, sizeof(p), "%s/build.log", out);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(p, sizeof(p), "%s/obj", out);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/.config", src);
    assert_int_equal(access(p, F_OK), -1);
    /* A small err keeps the end of the log. */
    char small[200];
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir '%s'", out, out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(kt_kbuild_run(&o, &res, small, sizeof(small)), -ECHILD);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_non_null(strstr(small, "make bzImage failed"));
    assert_string_equal(small + strlen(small) - 30, err + strlen(err) - 30);
}

/* The merged config lacks a required option: the run stops before the
 * build and names it. */
static void t_run_fake_tree_missing(void **state)
{
    char src[256], bin[256], out[256], frag[256], p[512], err[8192];
    snprintf(src, sizeof(src), "%s", s_path("fake-src2"));
    snprintf(bin, sizeof(bin), "%s", s_path("fake-bin2"));
    snprintf(out, sizeof(out), "%s", s_path("fake-out2"));
    snprintf(frag, sizeof(frag), "%s", s_path("lacking.kconfig"));
    if (!s_fake_tree(src, bin))
        skip();
    mkdir(out, 0755);
    char *t = s_config("SCHED_CLASS_EXT", NULL);
    s_write(frag, t);
    free(t);
    kt_kbuild_opts_t o = {.source_dir = src, .out_dir = out, .jobs = 1, .quiet = true,
                          .kconfig = frag};
    kt_kbuild_result_t res;
    assert_int_equal(kt_kbuild_run(&o, &res, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "CONFIG_SCHED_CLASS_EXT (sched_ext)"));
    assert_non_null(strstr(err, "after merging"));
    assert_null(strstr(err, "fake build line"));
    snprintf(p, sizeof(p), "%s/build.log", out);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char log[8192];
    size_t n = fread(log, 1, sizeof(log) - 1, f);
    fclose(f);
    log[n] = '\0';
    assert_non_null(strstr(log, "make tinyconfig"));
    assert_non_null(strstr(log, "olddefconfig"));
    assert_null(strstr(log, "bzImage"));
}

static int s_setup(void **state)
{
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_required_table),
        cmocka_unit_test(t_config_complete),
        cmocka_unit_test(t_config_each_missing),
        cmocka_unit_test(t_config_not_set_and_module),
        cmocka_unit_test(t_config_several_named),
        cmocka_unit_test(t_config_nr_cpus),
        cmocka_unit_test(t_config_small_err),
        cmocka_unit_test(t_config_unreadable),
        cmocka_unit_test(t_kconfig_hash),
        cmocka_unit_test(t_kconfig_hash_errors),
        cmocka_unit_test(t_product_fragment),
        cmocka_unit_test(t_elf_probes),
        cmocka_unit_test(t_elf_static),
        cmocka_unit_test(t_run_refuses),
        cmocka_unit_test(t_run_fake_tree),
        cmocka_unit_test(t_run_fake_tree_missing),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
