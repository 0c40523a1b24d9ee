/*
 * dns.c - is each backend host name still where the generation found it (dns.h).
 */
#include "front/dns.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "net/net.h"

/* A literal address ("10.0.0.7", "::1") or a unix socket: nothing to look up. */
static bool is_name(const char *host)
{
    unsigned char buf[16];
    return host[0] != '\0' && inet_pton(AF_INET, host, buf) != 1 &&
           inet_pton(AF_INET6, host, buf) != 1;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) {
        return false;
    }
    if (a->sa_family == AF_INET) {
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    }
    if (a->sa_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    }
    return false;
}

bool dbt_dns_backend_moved(const struct dbt_gen *g, bool *warned, char *why, size_t n)
{
    for (size_t i = 0; i < g->n; i++) {
        const struct dbt_gen_inst *gi = &g->insts[i];
        if (!is_name(gi->backend_host)) {
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(gi->backend_host, NULL, &hints, &res);
        if (rc != 0 || res == NULL) {
            if (!warned[i]) {
                dbt_warn("instance \"%s\": backend host %s does not resolve now (%s): new "
                         "connections keep going to the address it had",
                         gi->rt->name, gi->backend_host, rc != 0 ? gai_strerror(rc) : "no address");
                warned[i] = true;
            }
            continue;
        }
        warned[i] = false;
        bool found = false;
        for (const struct addrinfo *ai = res; ai != NULL && !found; ai = ai->ai_next) {
            found = same_addr(ai->ai_addr, (const struct sockaddr *)&gi->backend_addr);
        }
        char now[64] = "", was[64] = "";
        int port = 0;
        if (!found && res != NULL) {
            dbt_net_addr_str(res->ai_addr, res->ai_addrlen, now, sizeof(now), &port);
            dbt_net_addr_str((const struct sockaddr *)&gi->backend_addr, gi->backend_addrlen, was,
                             sizeof(was), &port);
        }
        freeaddrinfo(res);
        if (!found) {
            snprintf(why, n, "instance \"%s\": backend %s now resolves to %s, not %s", gi->rt->name,
                     gi->backend_host, now, was);
            return true;
        }
    }
    return false;
}
