/* ktstr-coord keygen DIR [--name NAME]: a CURVE certificate for a
 * coordinator or a worker. Writes DIR/NAME.key (public, for the peers'
 * allow directories and hosts.txt key=) and DIR/NAME.key_secret (0600, for
 * --curve-secret), and prints the public key. Never overwrites a key
 * unless --force. */
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_log.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-coord keygen DIR [--name NAME] [--force]\n"
               "Creates a CURVE certificate: DIR/NAME.key (public: copy it into a worker's\n"
               "--allow directory, or use the printed key as key= in hosts.txt) and\n"
               "DIR/NAME.key_secret (mode 0600: pass it as --curve-secret). NAME defaults\n"
               "to 'coordinator'. Prints the public key (Z85, 40 characters).\n"
               "Exit status: 0 written, 1 failed, 2 usage error.\n");
}

static void s_zcert_destroyp(zcert_t **c)
{
    zcert_destroy(c);
}

static bool s_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 64 && strcmp(s, ".") && strcmp(s, "..") &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int builtin_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *name = "coordinator";
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    if (!s_name_ok(name)) {
        kt_log_error("keygen: '%s' is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -)", name);
        return 2;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        kt_log_error("keygen: cannot create '%s': %m", dir);
        return 1;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        kt_log_error("keygen: '%s' is not a directory", dir);
        return 1;
    }
    char pub[4096], sec[4096 + 8];
    if ((size_t)snprintf(pub, sizeof(pub), "%s/%s.key", dir, name) >= sizeof(pub)) {
        kt_log_error("keygen: path too long: '%s'", dir);
        return 2;
    }
    snprintf(sec, sizeof(sec), "%s_secret", pub);
    if (!force && (access(pub, F_OK) == 0 || access(sec, F_OK) == 0)) {
        kt_log_error("keygen: '%s' or '%s' exists; not overwriting it (--force to replace)", pub,
                     sec);
        return 1;
    }
    _cleanup_(s_zcert_destroyp) zcert_t *cert = zcert_new();
    if (!cert) {
        kt_log_error("keygen: cannot create a certificate (libsodium/libzmq without CURVE?)");
        return 1;
    }
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "tool", "ktstr-coord keygen");
    /* The secret file must never exist with a wider mode, not even briefly:
     * create it under a private umask, then state the mode explicitly. */
    if (force) {
        unlink(sec);
        unlink(pub);
    }
    mode_t old = umask(077);
    int r = zcert_save_secret(cert, sec);
    umask(old);
    if (r < 0 || chmod(sec, 0600) < 0) {
        kt_log_error("keygen: cannot write '%s': %m", sec);
        unlink(sec);
        return 1;
    }
    old = umask(022);
    r = zcert_save_public(cert, pub);
    umask(old);
    if (r < 0) {
        kt_log_error("keygen: cannot write '%s': %m", pub);
        unlink(sec);
        return 1;
    }
    printf("%s\n", zcert_public_txt(cert));
    fprintf(stderr, "ktstr-coord keygen: wrote '%s' (public) and '%s' (secret, 0600)\n", pub, sec);
    return 0;
}
