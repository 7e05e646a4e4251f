/* hosts.txt: `host[:port] [key=value ...]` per line, `#` comments; or a
 * comma-separated list on the command line. Errors read "FILE:LINE: ...". */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KT_DEFAULT_PORT 7461
#define KT_HOSTS_MAX 1024

typedef struct kt_host {
    char host[256];             /* name, IPv4 or [IPv6] without brackets */
    uint16_t port;
    char endpoint[300];         /* "tcp://host:port" */
    char name[64];              /* name=... or host:port */
    char curve_public[64];      /* key=... : the worker's public key (Z85), "" when none */
    unsigned line;              /* where it was declared (0 for --workers lists) */
} kt_host_t;

/* Caller owns *ret (free()). -EINVAL with "FILE:LINE: what" in err. */
int kt_hosts_load(const char *path, kt_host_t **ret, unsigned *ret_n, char *err, size_t err_len);
int kt_hosts_parse(const char *text, size_t len, const char *origin, kt_host_t **ret,
                   unsigned *ret_n, char *err, size_t err_len);
/* "host:port,host2" from --workers. */
int kt_hosts_parse_list(const char *list, kt_host_t **ret, unsigned *ret_n, char *err,
                        size_t err_len);
