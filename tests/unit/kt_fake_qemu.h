/* A fake qemu-system-x86_64 for the runner's unit tests: the test executable
 * re-executes itself (cfg.qemu = /proc/self/exe) and, seeing "-nodefaults"
 * as its first argument, plays QEMU instead of running tests. It creates the
 * QMP and channel sockets named by -chardev, writes the console file, speaks
 * enough QMP (greeting, qmp_capabilities, query-status, quit) and plays the
 * guest's side of the channel as $KT_FAKE_MODE says:
 *   ok          hello; on a cell: save it to <workdir>/received.cell, hb,
 *               result; exit 0 on the ack (saved as received.ack) or on a
 *               shutdown (saved as received.shutdown)
 *   silent      never says hello
 *   stubborn    never says hello, ignores SIGTERM and QMP quit (SIGKILL only)
 *   abort       prints QEMU's MSR error to stderr and aborts
 *   internal    after QMP negotiation: a STOP event, query-status says
 *               internal-error, stderr has QEMU's KVM internal error lines
 *   hello-hang  hello, then silence
 *   garbage     hello, then a frame that is not msgpack
 *   oversize    hello, then a frame header announcing 4 GiB
 *   no-poweroff as ok, but stays up after the ack
 *   panic       console shows a kernel panic, exit 0 (panic=-1 -no-reboot)
 *   segv        dies by SIGSEGV during boot, saying nothing (QEMU 7.2's TCG
 *               crash in memory_region_dispatch_write) */
#pragma once

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fq_listen(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
        _exit(90);
    return fd;
}

/* The path= value of a -chardev option (no ",," escapes in test paths). */
static void fq_opt_path(const char *opt, char *buf, size_t len)
{
    const char *p = strstr(opt, "path=");
    buf[0] = '\0';
    if (p)
        snprintf(buf, len, "%.*s", (int)strcspn(p + 5, ","), p + 5);
}

static void fq_write(int fd, const void *b, size_t n)
{
    const char *p = b;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            _exit(91);
        p += w;
        n -= (size_t)w;
    }
}

static void fq_frame(int fd, const void *body, uint32_t len)
{
    unsigned char h[4] = {len >> 24, len >> 16, len >> 8, len};
    fq_write(fd, h, 4);
    fq_write(fd, body, len);
}

/* {"t": type} in msgpack. */
static void fq_simple(int fd, const char *type)
{
    unsigned char b[64];
    size_t n = strlen(type);
    b[0] = 0x81;
    b[1] = 0xa1;
    b[2] = 't';
    b[3] = (unsigned char)(0xa0 | n);
    memcpy(b + 4, type, n);
    fq_frame(fd, b, (uint32_t)(4 + n));
}

static void fq_save(const char *dir, const char *name, const void *b, size_t n)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static int fake_qemu_main(int argc, char **argv)
{
    const char *mode = getenv("KT_FAKE_MODE");
    if (!mode)
        mode = "ok";
    char chan[256] = "", qmp[256] = "", con[512] = "";
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-chardev") != 0)
            continue;
        const char *o = argv[i + 1];
        if (strstr(o, "id=ktchan"))
            fq_opt_path(o, chan, sizeof(chan));
        else if (strstr(o, "id=ktqmp"))
            fq_opt_path(o, qmp, sizeof(qmp));
        else if (strstr(o, "id=ktcon"))
            fq_opt_path(o, con, sizeof(con));
    }
    if (!chan[0] || !qmp[0] || !con[0]) {
        fprintf(stderr, "fake-qemu: missing -chardev for the channel, QMP or console\n");
        return 1;
    }
    char workdir[512];
    snprintf(workdir, sizeof(workdir), "%.*s", (int)(strrchr(con, '/') - con), con);
    bool stubborn = strcmp(mode, "stubborn") == 0;
    if (stubborn)
        signal(SIGTERM, SIG_IGN);
    FILE *cf = fopen(con, "we");
    if (!cf)
        return 1;
    setvbuf(cf, NULL, _IONBF, 0);
    fprintf(cf, "fake-qemu: booting\r\nline two\r\n");

    if (strcmp(mode, "abort") == 0) {
        fprintf(stderr, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n");
        fprintf(stderr, "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: "
                        "kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n");
        abort();
    }
    if (strcmp(mode, "segv") == 0) {
        usleep(100 * 1000);
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
        return 1;
    }
    if (strcmp(mode, "panic") == 0) {
        usleep(100 * 1000);
        fprintf(cf, "Kernel panic - not syncing: Attempted to kill init! exitcode=0x100\r\n");
        return 0;
    }

    int lq = fq_listen(qmp), lc = fq_listen(chan);
    int q = -1, c = -1;
    unsigned char in[1 << 16];
    size_t inlen = 0;
    char qin[4096];
    size_t qlen = 0;
    for (;;) {
        struct pollfd p[4] = {{lq, POLLIN, 0}, {lc, POLLIN, 0}, {q, POLLIN, 0}, {c, POLLIN, 0}};
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            return 1;
        if (p[0].revents & POLLIN) {
            q = accept4(lq, NULL, NULL, SOCK_CLOEXEC);
            const char *g = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n";
            fq_write(q, g, strlen(g));
        }
        if (p[1].revents & POLLIN) {
            c = accept4(lc, NULL, NULL, SOCK_CLOEXEC);
            if (strcmp(mode, "internal") != 0)
                fprintf(cf, "KTSTR_INIT_READY\r\n");
            if (strcmp(mode, "silent") != 0 && !stubborn && strcmp(mode, "internal") != 0)
                fq_simple(c, "hello");
            if (strcmp(mode, "garbage") == 0)
                fq_frame(c, "\xc1", 1);
            if (strcmp(mode, "oversize") == 0)
                fq_write(c, "\xff\xff\xff\xff\x81", 5);
        }
        if (q >= 0 && (p[2].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(q, qin + qlen, sizeof(qin) - 1 - qlen);
            if (n <= 0) {
                close(q);
                q = -1;
            } else {
                qlen += (size_t)n;
                qin[qlen] = '\0';
                char *nl;
                while ((nl = strchr(qin, '\n'))) {
                    *nl = '\0';
                    const char *idp = strstr(qin, "\"id\":");
                    long id = idp ? atol(idp + 5) : 0;
                    char out[256];
                    if (strstr(qin, "qmp_capabilities")) {
                        snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %ld}\r\n", id);
                        fq_write(q, out, strlen(out));
                        if (strcmp(mode, "internal") == 0) {
                            fprintf(stderr, "KVM internal error. Suberror: 1\n"
                                            "emulation failure\n"
                                            "RAX=0000000000000000 RBX=0000000000000000\n");
                            const char *ev = "{\"timestamp\": {\"seconds\": 1, \"microseconds\":"
                                             " 2}, \"event\": \"STOP\"}\r\n";
                            fq_write(q, ev, strlen(ev));
                        }
                    } else if (strstr(qin, "query-status")) {
                        bool ie = strcmp(mode, "internal") == 0;
                        snprintf(out, sizeof(out),
                                 "{\"return\": {\"status\": \"%s\", \"singlestep\": false, "
                                 "\"running\": %s}, \"id\": %ld}\r\n",
                                 ie ? "internal-error" : "running", ie ? "false" : "true", id);
                        fq_write(q, out, strlen(out));
                    } else if (strstr(qin, "\"quit\"")) {
                        snprintf(out, sizeof(out), "{\"return\": {}, \"id\": %ld}\r\n", id);
                        fq_write(q, out, strlen(out));
                        if (!stubborn)
                            return 0;
                    } else {
                        snprintf(out, sizeof(out),
                                 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                                 "\"nope\"}, \"id\": %ld}\r\n",
                                 id);
                        fq_write(q, out, strlen(out));
                    }
                    size_t used = (size_t)(nl - qin) + 1;
                    memmove(qin, nl + 1, qlen - used + 1);
                    qlen -= used;
                }
            }
        }
        if (c >= 0 && (p[3].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(c, in + inlen, sizeof(in) - inlen);
            if (n <= 0) {
                close(c);
                c = -1;
                continue;
            }
            inlen += (size_t)n;
            while (inlen >= 4) {
                uint32_t len =
                    (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
                if (inlen < 4 + (size_t)len)
                    break;
                const unsigned char *b = in + 4;
                if (memmem(b, len, "shutdown", 8)) {
                    fq_save(workdir, "received.shutdown", b, len);
                    fprintf(cf, "reboot: Power down\r\n");
                    return 0;
                } else if (memmem(b, len, "ack", 3) && len < 16) {
                    fq_save(workdir, "received.ack", b, len);
                    if (strcmp(mode, "no-poweroff") != 0) {
                        fprintf(cf, "reboot: Power down\r\n");
                        return 0;
                    }
                } else if (strcmp(mode, "hello-hang") != 0) {
                    fq_save(workdir, "received.cell", b, len);
                    fq_simple(c, "hb");
                    fq_simple(c, "event");
                    /* {"t":"result","verdict":"pass"} */
                    fq_frame(c, "\x82\xa1t\xa6result\xa7verdict\xa4pass", 23);
                }
                memmove(in, in + 4 + len, inlen - 4 - len);
                inlen -= 4 + len;
            }
        }
    }
}
