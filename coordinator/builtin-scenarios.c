/* ktstr-coord scenarios [--json | --yaml NAME | --yaml-all DIR]: the
 * built-in scenario catalog. Without options, one line per scenario: its
 * name, its constraints in short and its one-line description, in aligned
 * columns. --json prints the same as an array of objects; --yaml NAME
 * prints one scenario in the scenario file format (kt_scenario_yaml.c),
 * ready to copy and edit; --yaml-all DIR writes NAME.yaml for each. Exit
 * status: 0 done, 1 a file could not be written, 2 usage error or an
 * unknown scenario. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_log.h"
#include "kt_mpjson.h"
#include "kt_scenario.h"
#include "kt_scenario_emit.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-coord scenarios [--json | --yaml NAME | --yaml-all DIR]\n"
               "Lists the built-in scenarios, one per line: name, constraints on the\n"
               "topology (llcs>=2, cpus=4..64, numa<=2, smt; '-' for none) and what the\n"
               "scenario exercises.\n"
               "  --json          the list as a JSON array of objects\n"
               "  --yaml NAME     print scenario NAME in the scenario file format (a\n"
               "                  gauntlet's `scenarios:` takes such a file by its path)\n"
               "  --yaml-all DIR  write DIR/NAME.yaml for every built-in scenario\n"
               "Exit status: 0 done, 1 a file could not be written, 2 usage error or an\n"
               "unknown scenario.\n");
}

static void s_list(const kt_scenario_t *all, unsigned n)
{
    int name_w = 0, cons_w = 0;
    char c[96];
    for (unsigned i = 0; i < n; i++) {
        kt_scenario_emit_constraints(&all[i].constraints, c, sizeof(c));
        int nw = (int)strlen(all[i].name), cw = (int)strlen(c);
        name_w = nw > name_w ? nw : name_w;
        cons_w = cw > cons_w ? cw : cons_w;
    }
    for (unsigned i = 0; i < n; i++) {
        kt_scenario_emit_constraints(&all[i].constraints, c, sizeof(c));
        printf("%-*s  %-*s  %s\n", name_w, all[i].name, cons_w, c, all[i].description);
    }
}

static int s_json(const kt_scenario_t *all, unsigned n)
{
    _cleanup_(kt_json_decrefp) json_t *arr = json_array();
    if (!arr)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        const kt_scenario_t *s = &all[i];
        const kt_constraints_t *c = &s->constraints;
        char text[96];
        kt_scenario_emit_constraints(c, text, sizeof(text));
        json_t *o = json_pack(
            "{s:s, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:b}, s:s, s:I, "
            "s:I}",
            "name", s->name, "description", s->description, "duration_ms",
            (json_int_t)s->duration_ms, "constraints", "min_llcs", (json_int_t)c->min_llcs,
            "max_llcs", (json_int_t)c->max_llcs, "min_cpus", (json_int_t)c->min_cpus, "max_cpus",
            (json_int_t)c->max_cpus, "min_numa", (json_int_t)c->min_numa, "max_numa",
            (json_int_t)c->max_numa, "requires_smt", (int)c->requires_smt, "constraints_text", text,
            "cgroups", (json_int_t)s->n_cgroups, "steps", (json_int_t)s->n_steps);
        if (!o || json_array_append_new(arr, o) < 0)
            return -ENOMEM;
    }
    char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return -ENOMEM;
    printf("%s\n", text);
    free(text);
    return 0;
}

static void s_known(const kt_scenario_t *all, unsigned n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", all[i].name);
}

/* Writes the text to DIR/NAME.yaml through a temporary file renamed into
 * place, so that a reader never sees half a scenario. Logs what failed. */
static int s_write_file(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.yaml", dir, name) >= sizeof(path) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.yaml.tmp", dir, name) >= sizeof(tmp)) {
        kt_log_error("scenarios: '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        kt_log_error("scenarios: cannot create '%s': %s", tmp, strerror(e));
        return -e;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            kt_log_error("scenarios: cannot write '%s': %s", tmp, strerror(e));
            unlink(tmp);
            return -e;
        }
        off += (size_t)w;
    }
    if (close(TAKE_FD(fd)) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        kt_log_error("scenarios: cannot write '%s': %s", path, strerror(e));
        unlink(tmp);
        return -e;
    }
    return 0;
}

static int s_yaml_all(const kt_scenario_t *all, unsigned n, const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        kt_log_error("scenarios: cannot create '%s': %m", dir);
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        kt_log_error("scenarios: '%s' is not a directory", dir);
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        char err[512] = "";
        _cleanup_free_ char *text = NULL;
        if (kt_scenario_emit_yaml(&all[i], &text, err, sizeof(err)) < 0) {
            kt_log_error("scenarios: scenario '%s': %s", all[i].name, err);
            return 1;
        }
        if (s_write_file(dir, all[i].name, text) < 0)
            return 1;
    }
    fprintf(stderr, "%u scenarios written to '%s'\n", n, dir);
    return 0;
}

int builtin_scenarios(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"yaml", required_argument, NULL, 'y'},
        {"yaml-all", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    const char *yaml = NULL, *yaml_all = NULL;
    int c, modes = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jy:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            modes++;
            break;
        case 'y':
            yaml = optarg;
            modes++;
            break;
        case 'a':
            yaml_all = optarg;
            modes++;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || modes > 1) {
        if (modes > 1)
            fprintf(stderr, "ktstr-coord scenarios: give one of --json, --yaml, --yaml-all\n");
        s_usage(stderr);
        return 2;
    }
    unsigned n;
    const kt_scenario_t *all = kt_scenario_builtins(&n);
    if (yaml_all)
        return s_yaml_all(all, n, yaml_all);
    int r;
    if (yaml) {
        const kt_scenario_t *s = kt_scenario_builtin_find(yaml);
        if (!s) {
            char known[1024];
            s_known(all, n, known, sizeof(known));
            fprintf(stderr, "ktstr-coord scenarios: unknown scenario '%s' (known: %s)\n", yaml,
                    known);
            return 2;
        }
        char err[512] = "";
        _cleanup_free_ char *text = NULL;
        if ((r = kt_scenario_emit_yaml(s, &text, err, sizeof(err))) < 0) {
            kt_log_error("scenarios: scenario '%s': %s", s->name, err);
            return 1;
        }
        fputs(text, stdout);
    } else if (json) {
        if ((r = s_json(all, n)) < 0) {
            kt_log_error("scenarios: cannot build the JSON list: %s", strerror(-r));
            return 1;
        }
    } else {
        s_list(all, n);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        kt_log_error("scenarios: cannot write the output: %m");
        return 1;
    }
    return 0;
}
