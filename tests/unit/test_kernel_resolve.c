/* Kernel resolution and the commit map: what a path names (bzImage, build
 * dir, source dir with a build), label and version from the image, the
 * content hash, the commit of the git work tree (clean, dirty, untracked,
 * staged, detached, O= builds), and that a run resolves each kernel exactly
 * once however many cells it has. Repositories are made with libgit2 in
 * temporary folders and removed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_coord.h"
#include "kt_gauntlet.h"
#include "kt_hash.h"
#include "kt_kernel_resolve.h"
#include "kt_test_git.h"

static char *s_tmp;

static int s_setup(void **state)
{
    (void)state;
    s_tmp = kt_test_tmpdir("kresolve");
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kt_test_rm_rf(s_tmp);
    free(s_tmp);
    s_tmp = NULL;
    return 0;
}

static char *s_path(const char *fmt, ...)
{
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", s_tmp, rel) > 0);
    return p;
}

static void test_bzimage_outside_git(void **state)
{
    (void)state;
    char *img = s_path("plain/bzImage");
    kt_test_fake_bzimage(img, "6.12.117", 1);
    kt_coord_kernel_t k;
    unsigned lookups = 0;
    char err[1024] = "";
    assert_int_equal(kt_kernel_resolve(img, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.label, "6.12.117");
    assert_string_equal(k.version, "6.12.117");
    assert_string_equal(k.commit, "");
    assert_string_equal(k.path, img);
    assert_int_equal(k.size, 4096);
    char sha[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_file(img, sha), 0);
    assert_string_equal(k.sha, sha);
    /* Not in a work tree: no libgit2 resolution was made. */
    assert_int_equal(lookups, 0);
    assert_int_equal(kt_git_commit_of(img, k.commit, sizeof(k.commit), err, sizeof(err)), -ENOENT);

    /* A given label wins; a bad one is refused. */
    assert_int_equal(kt_kernel_resolve(img, "mine-1", &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.label, "mine-1");
    assert_string_equal(k.version, "6.12.117");
    assert_int_equal(kt_kernel_resolve(img, "a/b", &k, &lookups, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "label 'a/b' is not valid"));
    free(img);
}

static void test_what_a_path_names(void **state)
{
    (void)state;
    char err[1024] = "";
    kt_coord_kernel_t k;
    /* A build dir. */
    char *build = s_path("build1"), *img1 = s_path("build1/arch/x86/boot/bzImage");
    kt_test_fake_bzimage(img1, "6.13.0-rc1", 2);
    assert_int_equal(kt_kernel_resolve(build, NULL, &k, NULL, err, sizeof(err)), 0);
    assert_string_equal(k.path, img1);
    assert_string_equal(k.label, "6.13.0-rc1");
    /* A folder holding a bzImage. */
    char *dir2 = s_path("flat"), *img2 = s_path("flat/bzImage");
    kt_test_fake_bzimage(img2, "6.1.0-28-cloud-amd64", 3);
    assert_int_equal(kt_kernel_resolve(dir2, NULL, &k, NULL, err, sizeof(err)), 0);
    assert_string_equal(k.path, img2);
    assert_string_equal(k.label, "6.1.0-28-cloud-amd64");
    /* A source dir with a build/ subfolder. */
    char *src = s_path("src"), *img3 = s_path("src/build/arch/x86/boot/bzImage");
    kt_test_fake_bzimage(img3, "6.12.0", 4);
    assert_int_equal(kt_kernel_resolve(src, NULL, &k, NULL, err, sizeof(err)), 0);
    assert_string_equal(k.path, img3);
    /* A folder without a kernel. */
    char *empty = s_path("empty"), *junk = s_path("empty/README");
    kt_test_writef(junk, "nothing here\n");
    assert_int_equal(kt_kernel_resolve(empty, NULL, &k, NULL, err, sizeof(err)), -ENOENT);
    char want[2048];
    snprintf(want, sizeof(want),
             "kernel '%s': a directory without a kernel image (looked for "
             "arch/x86/boot/bzImage, bzImage and build/arch/x86/boot/bzImage)",
             empty);
    assert_string_equal(err, want);
    /* Not a bzImage. */
    assert_int_equal(kt_kernel_resolve(junk, NULL, &k, NULL, err, sizeof(err)), -ENOEXEC);
    snprintf(want, sizeof(want),
             "kernel '%s': not a bzImage (no x86 boot header or no version string)", junk);
    assert_string_equal(err, want);
    /* Missing. */
    char *missing = s_path("nope/bzImage");
    assert_int_equal(kt_kernel_resolve(missing, NULL, &k, NULL, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "kernel '%s': No such file or directory", missing);
    assert_string_equal(err, want);
    /* A release with bytes a file name should not hold becomes a safe label. */
    char *odd = s_path("odd/bzImage");
    kt_test_fake_bzimage(odd, "6.9.0-x/y:z", 5);
    assert_int_equal(kt_kernel_resolve(odd, NULL, &k, NULL, err, sizeof(err)), 0);
    assert_string_equal(k.version, "6.9.0-x/y:z");
    assert_string_equal(k.label, "6.9.0-x_y_z");
    free(build), free(img1), free(dir2), free(img2), free(src), free(img3);
    free(empty), free(junk), free(missing), free(odd);
}

static void test_git_states(void **state)
{
    (void)state;
    char *repo_dir = s_path("linux");
    git_repository *repo = kt_test_git_init(repo_dir);
    char *makefile = s_path("linux/Makefile"), *img = s_path("linux/arch/x86/boot/bzImage");
    char *kconfig = s_path("linux/Kconfig");
    kt_test_writef(makefile, "VERSION = 6\n");
    kt_test_writef(kconfig, "mainmenu \"Linux\"\n");
    kt_test_fake_bzimage(img, "6.12.117", 6);
    char first[41], second[41];
    const char *files[] = {"Makefile", "Kconfig"};
    kt_test_git_commit(repo, files, 2, "first", first);
    kt_test_writef(makefile, "VERSION = 6\nPATCHLEVEL = 12\n");
    kt_test_git_commit(repo, files, 1, "second", second);

    char want[64], err[1024] = "";
    kt_coord_kernel_t k;
    unsigned lookups = 0;
    /* Clean: the bzImage itself is untracked (a build output) and does not
     * make the tree dirty. */
    snprintf(want, sizeof(want), "%.7s", second);
    assert_int_equal(kt_kernel_resolve(repo_dir, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.commit, want);
    assert_int_equal(lookups, 1);
    assert_int_equal(kt_kernel_resolve(img, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.commit, want);
    assert_int_equal(lookups, 2);
    char buf[48];
    assert_int_equal(kt_git_commit_of(img, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);

    /* An untracked file: still clean. */
    char *untracked = s_path("linux/notes.txt");
    kt_test_writef(untracked, "scratch\n");
    assert_int_equal(kt_git_commit_of(repo_dir, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);

    /* A modified tracked file: dirty. */
    kt_test_writef(makefile, "VERSION = 6\nPATCHLEVEL = 13\n");
    snprintf(want, sizeof(want), "%.7s-dirty", second);
    assert_int_equal(kt_git_commit_of(repo_dir, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);

    /* Staged but not committed: still dirty. */
    git_index *idx = NULL;
    assert_int_equal(git_repository_index(&idx, repo), 0);
    assert_int_equal(git_index_add_bypath(idx, "Makefile"), 0);
    assert_int_equal(git_index_write(idx), 0);
    git_index_free(idx);
    assert_int_equal(kt_git_commit_of(repo_dir, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);

    /* Back to the committed content, then a detached HEAD at the first
     * commit: the Makefile differs from that commit, so dirty again. */
    kt_test_writef(makefile, "VERSION = 6\nPATCHLEVEL = 12\n");
    assert_int_equal(git_repository_index(&idx, repo), 0);
    assert_int_equal(git_index_add_bypath(idx, "Makefile"), 0);
    assert_int_equal(git_index_write(idx), 0);
    git_index_free(idx);
    snprintf(want, sizeof(want), "%.7s", second);
    assert_int_equal(kt_git_commit_of(repo_dir, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);
    kt_test_git_detach(repo, first);
    snprintf(want, sizeof(want), "%.7s-dirty", first);
    assert_int_equal(kt_git_commit_of(repo_dir, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);

    /* An O= build dir outside the tree: its `source` link names the tree. */
    char *obuild = s_path("obuild"), *oimg = s_path("obuild/arch/x86/boot/bzImage");
    char *olink = s_path("obuild/source");
    kt_test_fake_bzimage(oimg, "6.12.117", 7);
    assert_int_equal(symlink(repo_dir, olink), 0);
    lookups = 0;
    assert_int_equal(kt_kernel_resolve(obuild, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.commit, want);
    assert_int_equal(lookups, 1);
    assert_string_equal(k.path, oimg);

    /* A buffer too small for the commit. */
    assert_int_equal(kt_git_commit_of(repo_dir, buf, 8, err, sizeof(err)), -ENOBUFS);

    git_repository_free(repo);
    free(repo_dir), free(makefile), free(img), free(untracked), free(obuild), free(oimg);
    free(olink), free(kconfig);
}

static void test_unborn_repo(void **state)
{
    (void)state;
    char *dir = s_path("fresh"), *img = s_path("fresh/bzImage");
    git_repository *repo = kt_test_git_init(dir);
    kt_test_fake_bzimage(img, "6.12.117", 8);
    kt_coord_kernel_t k;
    unsigned lookups = 0;
    char err[1024] = "";
    assert_int_equal(kt_kernel_resolve(img, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.commit, "");
    assert_int_equal(lookups, 1);
    char buf[48];
    assert_int_equal(kt_git_commit_of(img, buf, sizeof(buf), err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "the git work tree has no commit yet"));
    git_repository_free(repo);
    free(dir), free(img);
}

/* A bzImage copied into a repository that is not a kernel tree (this
 * project's fixtures, say) gets no commit: that repository's HEAD says
 * nothing about the kernel. */
static void test_other_repository(void **state)
{
    (void)state;
    char *dir = s_path("project"), *readme = s_path("project/README");
    char *img = s_path("project/tests/fixtures/kernel/bzImage");
    git_repository *repo = kt_test_git_init(dir);
    kt_test_writef(readme, "a project, not a kernel\n");
    char hex[41];
    const char *files[] = {"README"};
    kt_test_git_commit(repo, files, 1, "init", hex);
    kt_test_fake_bzimage(img, "6.1.0-28-cloud-amd64", 9);
    kt_coord_kernel_t k;
    unsigned lookups = 0;
    char err[1024] = "";
    assert_int_equal(kt_kernel_resolve(img, NULL, &k, &lookups, err, sizeof(err)), 0);
    assert_string_equal(k.commit, "");
    assert_int_equal(lookups, 1);
    /* The generic lookup still reads that tree. */
    char buf[48], want[16];
    snprintf(want, sizeof(want), "%.7s", hex);
    assert_int_equal(kt_git_commit_of(img, buf, sizeof(buf), err, sizeof(err)), 0);
    assert_string_equal(buf, want);
    git_repository_free(repo);
    free(dir), free(readme), free(img);
}

static void s_gauntlet_freep(kt_gauntlet_t **g)
{
    kt_gauntlet_free(g);
}

/* The commit map: a run with 2 kernels in git trees and one outside, and
 * dozens of cells, makes exactly 2 libgit2 resolutions, and every cell
 * carries its kernel's commit. */
static void test_commit_map_once_per_kernel(void **state)
{
    (void)state;
    char hex[2][41];
    char *dirs[2];
    for (unsigned i = 0; i < 2; i++) {
        dirs[i] = s_path("map%u", i);
        git_repository *repo = kt_test_git_init(dirs[i]);
        char *f = s_path("map%u/Kconfig", i), *img = s_path("map%u/arch/x86/boot/bzImage", i);
        char *mk = s_path("map%u/Makefile", i);
        kt_test_writef(f, "config X%u\n", i);
        kt_test_writef(mk, "VERSION = 6\n");
        kt_test_fake_bzimage(img, i ? "6.13.0" : "6.12.0", 10 + i);
        const char *files[] = {"Kconfig", "Makefile"};
        kt_test_git_commit(repo, files, 2, "base", hex[i]);
        free(mk);
        if (i == 1)
            kt_test_writef(f, "config CHANGED\n"); /* dirty */
        git_repository_free(repo);
        free(f), free(img);
    }
    char *outside = s_path("nogit/bzImage");
    kt_test_fake_bzimage(outside, "6.1.0", 12);
    char *sched = s_path("bin/scx_qmap");
    kt_test_writef(sched, "#!/bin/sh\n");
    char *gpath = s_path("g.yaml");
    kt_test_writef(gpath, "kernels: [map0, map1, nogit/bzImage]\n"
                          "schedulers:\n"
                          "  - name: eevdf\n"
                          "  - name: scx_qmap\n"
                          "    binary: bin/scx_qmap\n"
                          "    flags:\n"
                          "      - {name: slice-short, args: [\"-s\", \"5000\"]}\n"
                          "      - {name: batch, args: [\"-b\", \"8\"]}\n"
                          "      - {name: boost, args: [\"-H\"], requires: [batch]}\n"
                          "topologies: [tiny-1llc, tiny-2llc]\n"
                          "scenarios: [steady, pipe_pingpong]\n"
                          "duration: 3s\n");
    kt_gauntlet_t *g __attribute__((cleanup(s_gauntlet_freep))) = NULL;
    char err[1024] = "";
    assert_int_equal(kt_gauntlet_load(gpath, &g, err, sizeof(err)), 0);
    kt_coord_run_t run = {0};
    if (kt_coord_run_prepare(g, &run, err, sizeof(err)) < 0)
        fail_msg("prepare: %s", err);
    assert_int_equal(run.n_cells, 3 * 28);
    assert_int_equal(run.commit_lookups, 2);
    char want0[16], want1[32];
    snprintf(want0, sizeof(want0), "%.7s", hex[0]);
    snprintf(want1, sizeof(want1), "%.7s-dirty", hex[1]);
    assert_string_equal(run.kernels[0].commit, want0);
    assert_string_equal(run.kernels[1].commit, want1);
    assert_string_equal(run.kernels[2].commit, "");
    unsigned per[3] = {0};
    for (unsigned i = 0; i < run.n_cells; i++) {
        const kt_coord_cell_t *c = &run.cells[i];
        const char *want = c->kernel == 0 ? want0 : c->kernel == 1 ? want1 : "";
        assert_string_equal(c->spec.kernel_commit, want);
        assert_string_equal(c->spec.kernel_label, run.kernels[c->kernel].label);
        per[c->kernel]++;
    }
    assert_int_equal(per[0], 28);
    assert_int_equal(per[1], 28);
    assert_int_equal(per[2], 28);
    kt_coord_run_free(&run);
    assert_null(run.cells);
    for (unsigned i = 0; i < 2; i++)
        free(dirs[i]);
    free(outside), free(sched), free(gpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bzimage_outside_git),
        cmocka_unit_test(test_what_a_path_names),
        cmocka_unit_test(test_git_states),
        cmocka_unit_test(test_unborn_repo),
        cmocka_unit_test(test_other_repository),
        cmocka_unit_test(test_commit_map_once_per_kernel),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
