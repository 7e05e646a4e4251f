/* ktstr-coord kernel build|list|clean|resolve: the kernel cache from the
 * command line. resolve builds nothing; build reuses a cached kernel unless
 * --force. Exit status: 0 done, 1 list/resolve found something wrong (a
 * corrupt entry, a spec not cached), 2 bad usage or a failure. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_kcache.h"
#include "kt_kernels.h"

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-coord kernel build (--source DIR | --git URL#REF | --deb PACKAGE)\n"
            "                                [--force] [-j N]\n"
            "                                [--kconfig FILE] [-q]\n"
            "       ktstr-coord kernel list [--json] [--kconfig FILE]\n"
            "       ktstr-coord kernel clean [--keep N] [--corrupt]\n"
            "       ktstr-coord kernel resolve SPEC... [--kernel-repo DIR] [--json]\n"
            "                                [--kconfig FILE]\n"
            "The kernel cache is ${KTSTR_CACHE_DIR:-~/.cache/ktstr}/kernels/{key}/.\n"
            "  build    configure (deploy/ktstr.kconfig on tinyconfig), build and install a\n"
            "           kernel with its static sched_ext schedulers; a cached one is reused\n"
            "           unless --force; a dirty tree is built but not cached; --deb\n"
            "           fetches a Debian kernel image package with apt instead\n"
            "  list     key, version, source, commit, size, built_at; marks: corrupt (never\n"
            "           used), stale (built with another kconfig fragment than --kconfig);\n"
            "           and how many staging folders interrupted builds left over\n"
            "  clean    remove every entry; --keep N: all but the newest N; --corrupt: the\n"
            "           corrupt ones (both: both); always the leftover staging folders\n"
            "           (.tmp-*) that no running build holds\n"
            "  resolve  what each spec expands to (label, version, commit, key, cached),\n"
            "           building nothing\n"
            "Specs: git+URL#REF, A..B (release tags of --kernel-repo, else cached kernels),\n"
            "a path (bzImage, build dir, source dir), a version (6.12.117; 6.12 = newest\n"
            "cached 6.12.x), a cache key, deb:PACKAGE.\n"
            "--kconfig defaults to $KTSTR_KCONFIG, else the source tree's\n"
            "deploy/ktstr.kconfig.\n");
}

static int s_root(char *buf, size_t len)
{
    char err[512];
    int r = kt_kcache_root(buf, len, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "ktstr-coord kernel: %s\n", err);
    return r;
}

static void s_human_size(uint64_t b, char *buf, size_t len)
{
    if (b >= 1024 * 1024)
        snprintf(buf, len, "%.1fM", (double)b / (1024.0 * 1024.0));
    else
        snprintf(buf, len, "%.1fK", (double)b / 1024.0);
}

static int s_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"kconfig", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    const char *kconfig = kt_kernels_default_kconfig();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = true; break;
        case 'k': kconfig = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ktstr-coord kernel list: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char root[PATH_MAX], err[1024], kc[65] = "";
    if (s_root(root, sizeof(root)) < 0)
        return 2;
    if (kt_kernels_kconfig_hash(kconfig, kc, NULL, 0) < 0)
        kc[0] = '\0'; /* no fragment: nothing is stale */
    kt_kcache_entry_t *v = NULL;
    unsigned n = 0;
    if (kt_kcache_list(root, kc, &v, &n, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord kernel list: %s\n", err);
        return 2;
    }
    unsigned corrupt = 0;
    json_t *arr = json ? json_array() : NULL;
    if (!json)
        printf("%-48s %-24s %-7s %-12s %8s %-20s %s\n", "KEY", "VERSION", "SOURCE", "COMMIT",
               "SIZE", "BUILT_AT", "MARKS");
    for (unsigned i = 0; i < n; i++) {
        const kt_kcache_entry_t *e = &v[i];
        corrupt += e->corrupt;
        const char *mark = e->corrupt ? "corrupt" : e->stale ? "stale" : "";
        if (json) {
            json_t *o = json_pack(
                "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:b,s:b,s:s}", "key", e->meta.key, "version",
                e->meta.version, "source", e->corrupt ? "" : kt_kcache_source_name(e->meta.source),
                "source_loc", e->meta.source_loc, "ref", e->meta.ref, "commit", e->meta.commit,
                "size", (json_int_t)e->size, "built_at", e->meta.built_at, "corrupt", e->corrupt,
                "stale", e->stale, "path", e->dir);
            if (o && e->corrupt)
                json_object_set_new(o, "why", json_string(e->why));
            json_array_append_new(arr, o);
        } else {
            char size[32];
            s_human_size(e->size, size, sizeof(size));
            printf("%-48s %-24s %-7s %-12s %8s %-20s %s%s%s\n", e->meta.key,
                   e->meta.version[0] ? e->meta.version : "-",
                   e->corrupt ? "-" : kt_kcache_source_name(e->meta.source),
                   e->meta.commit[0] ? e->meta.commit : "-", e->corrupt ? "-" : size,
                   e->meta.built_at[0] ? e->meta.built_at : "-", mark,
                   e->corrupt ? ": " : "", e->corrupt ? e->why : "");
        }
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(arr);
    }
    free(v);
    /* Counting takes the staging folders' locks for a moment: a build
     * starting meanwhile waits, never fails. */
    int left = kt_kcache_sweep(root, false, err, sizeof(err));
    if (left < 0)
        fprintf(stderr, "ktstr-coord kernel list: %s, ignoring\n", err);
    else if (left > 0)
        fprintf(json ? stderr : stdout,
                "%d staging folder(s) left over by interrupted builds in %s: `ktstr-coord "
                "kernel clean` removes them\n",
                left, root);
    return corrupt ? 1 : 0;
}

static int s_clean(int argc, char **argv)
{
    static const struct option opts[] = {
        {"keep", required_argument, NULL, 'K'},
        {"corrupt", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int keep = -1;
    bool corrupt = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'K': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 100000) {
                fprintf(stderr, "ktstr-coord kernel clean: --keep '%s': expected 0..100000\n",
                        optarg);
                return 2;
            }
            keep = (int)v;
            break;
        }
        case 'C': corrupt = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ktstr-coord kernel clean: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char root[PATH_MAX], err[1024];
    if (s_root(root, sizeof(root)) < 0)
        return 2;
    int r = kt_kcache_clean(root, keep, corrupt, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord kernel clean: %s\n", err);
        return 2;
    }
    /* Whatever the flags: a staging folder nobody holds is a crashed
     * build's, of no use to anyone. */
    int swept = kt_kcache_sweep(root, true, err, sizeof(err));
    if (swept < 0) {
        fprintf(stderr, "ktstr-coord kernel clean: removed %d kernel(s); %s\n", r, err);
        return 2;
    }
    printf("removed %d kernel(s) from %s\n", r, root);
    if (swept)
        printf("removed %d leftover staging folder(s)\n", swept);
    return 0;
}

static json_t *s_kres_json(const kt_kres_t *k)
{
    return json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:b,s:b,s:s,s:s?}", "spec", k->spec, "label",
                     k->label, "version", k->version[0] ? k->version : NULL, "commit",
                     k->commit[0] ? k->commit : NULL, "key", k->key[0] ? k->key : NULL, "cached",
                     k->cached, "stale", k->stale, "needs",
                     k->need == KT_KRES_READY   ? "nothing"
                     : k->need == KT_KRES_BUILD ? "build"
                                                : "fetch",
                     "path", k->path[0] ? k->path : NULL);
}

static int s_resolve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kernel-repo", required_argument, NULL, 'R'},
        {"kconfig", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    kt_kernels_opts_t ko = {.kconfig = kt_kernels_default_kconfig(), .quiet = true};
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'R': ko.kernel_repo = optarg; break;
        case 'k': ko.kconfig = optarg; break;
        case 'J': json = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "ktstr-coord kernel resolve: no SPEC given\n");
        s_usage(stderr);
        return 2;
    }
    char root[PATH_MAX], err[2048];
    if (s_root(root, sizeof(root)) < 0)
        return 2;
    ko.cache_root = root;
    kt_kres_t *v = NULL;
    unsigned n = 0;
    /* Every spec first: one bad spec fails the whole command, naming it. */
    for (int i = optind; i < argc; i++) {
        int r = kt_kernels_resolve(&ko, argv[i], NULL, &v, &n, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "ktstr-coord kernel resolve: %s\n", err);
            free(v);
            return 2;
        }
    }
    if (json) {
        json_t *arr = json_array();
        for (unsigned i = 0; i < n; i++)
            json_array_append_new(arr, s_kres_json(&v[i]));
        json_dumpf(arr, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(arr);
    } else {
        printf("%-24s %-20s %-14s %-7s %s\n", "LABEL", "VERSION", "COMMIT", "CACHED", "KEY");
        for (unsigned i = 0; i < n; i++)
            printf("%-24s %-20s %-14s %-7s %s%s\n", v[i].label,
                   v[i].version[0] ? v[i].version : "?", v[i].commit[0] ? v[i].commit : "-",
                   v[i].cached ? (v[i].stale ? "stale" : "yes")
                   : v[i].need == KT_KRES_READY ? "-"
                                                : "no",
                   v[i].key[0] ? v[i].key : "-",
                   v[i].need == KT_KRES_BUILD   ? " (needs a build)"
                   : v[i].need == KT_KRES_FETCH ? " (needs a fetch)"
                                                : "");
    }
    free(v);
    return 0;
}

static int s_build(int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, NULL, 's'},
        {"git", required_argument, NULL, 'g'},
        {"deb", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},
        {"jobs", required_argument, NULL, 'j'},
        {"kconfig", required_argument, NULL, 'k'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    kt_kernels_opts_t ko = {.kconfig = kt_kernels_default_kconfig()};
    const char *source = NULL, *git = NULL, *deb = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 's': source = optarg; break;
        case 'g': git = optarg; break;
        case 'd': deb = optarg; break;
        case 'f': ko.force = true; break;
        case 'k': ko.kconfig = optarg; break;
        case 'q': ko.quiet = true; break;
        case 'j': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 1024) {
                fprintf(stderr, "ktstr-coord kernel build: -j '%s': expected 1..1024\n", optarg);
                return 2;
            }
            ko.jobs = (unsigned)v;
            break;
        }
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind != argc || (!!source + !!git + !!deb) != 1) {
        fprintf(stderr, "ktstr-coord kernel build: give exactly one of --source DIR, --git "
                        "URL#REF and --deb PACKAGE\n");
        return 2;
    }
    if (!deb && !kt_kernels_can_build()) {
        fprintf(stderr, "ktstr-coord kernel build: built without the kernel build pipeline\n");
        return 2;
    }
    char root[PATH_MAX], err[4096], spec[KT_KSPEC_MAX + 8];
    if (s_root(root, sizeof(root)) < 0)
        return 2;
    ko.cache_root = root;
    if (git) {
        snprintf(spec, sizeof(spec), "git+%s", git);
    } else if (deb) {
        snprintf(spec, sizeof(spec), "deb:%s", deb);
    } else {
        /* Always a path spec, even for a bare folder name. */
        snprintf(spec, sizeof(spec), "%s%s", source[0] == '/' || source[0] == '.' ? "" : "./",
                 source);
    }
    kt_kres_t *v = NULL;
    unsigned n = 0;
    int r = kt_kernels_resolve(&ko, spec, NULL, &v, &n, err, sizeof(err));
    /* READY from the cache is a reuse; READY otherwise means the path
     * resolved to a kernel image, not a tree to build. */
    if (r == 0 && source && v[0].need == KT_KRES_READY && !v[0].cached) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "--source '%s' is not a kernel source tree (no Kconfig and "
                 "Makefile at its top) or already holds a build; give the tree",
                 source);
    }
    if (r == 0 && v[0].need == KT_KRES_READY && !ko.force) {
        printf("%s (cached)\n", v[0].key[0] ? v[0].key : v[0].path);
        free(v);
        return 0;
    }
    if (r == 0)
        r = kt_kernels_build(&ko, &v[0], err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord kernel build: %s\n", err);
        free(v);
        return 2;
    }
    printf("%s\n", v[0].key[0] ? v[0].key : v[0].path);
    free(v);
    return 0;
}

int builtin_kernel(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        s_usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "list"))
        return s_list(argc - 1, argv + 1);
    if (!strcmp(sub, "clean"))
        return s_clean(argc - 1, argv + 1);
    if (!strcmp(sub, "resolve"))
        return s_resolve(argc - 1, argv + 1);
    if (!strcmp(sub, "build"))
        return s_build(argc - 1, argv + 1);
    fprintf(stderr, "ktstr-coord kernel: unknown command '%s'\n", sub);
    s_usage(stderr);
    return 2;
}
