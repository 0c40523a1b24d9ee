/*
 * settings.c - what every session reads of the daemon's command line (set by the front from
 * dbtlsd's options before the workers start, read-only afterwards): the pre-authentication
 * deadline, TCP keepalive, the load balancers that send a PROXY header, and PostgreSQL's
 * log_connections / log_disconnections lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "front/worker.h"

static uint64_t auth_timeout_ms = 60000;
static struct dbt_net_tcp_opts tcp_opts; /* SO_KEEPALIVE, system timings */
static struct dbt_net_cidr *proxy_from;  /* peers that send a PROXY header first */
static size_t n_proxy_from;
static bool log_connections, log_disconnections;

void dbt_session_set_auth_timeout_ms(uint64_t ms)
{
    auth_timeout_ms = ms;
}

uint64_t dbt_session_auth_timeout_ms(void)
{
    return auth_timeout_ms;
}

void dbt_session_set_tcp_opts(const struct dbt_net_tcp_opts *tcp)
{
    tcp_opts = *tcp;
}

const struct dbt_net_tcp_opts *dbt_session_tcp_opts(void)
{
    return &tcp_opts;
}

dbt_res dbt_session_set_proxy_from(const struct dbt_net_cidr *list, size_t n)
{
    struct dbt_net_cidr *copy = NULL;
    if (n > 0) {
        copy = calloc(n, sizeof(*copy));
        if (copy == NULL) {
            return dbt_fail(DBT_E_NOMEM, "out of memory");
        }
        memcpy(copy, list, n * sizeof(*copy));
    }
    free(proxy_from);
    proxy_from = copy;
    n_proxy_from = n;
    return DBT_OK;
}

bool dbt_session_proxy_trusted(const struct sockaddr *peer)
{
    for (size_t i = 0; i < n_proxy_from; i++) {
        if (dbt_net_cidr_match(&proxy_from[i], peer)) {
            return true;
        }
    }
    return false;
}

void dbt_session_set_logging(bool connections, bool disconnections)
{
    log_connections = connections;
    log_disconnections = disconnections;
}

/*
 * PostgreSQL's log_connections line, from the front: who, to which database, over what TLS, with
 * which certificate (the identity PostgreSQL 14+ logs for cert authentication), from where.
 */
void dbt_session_log_authorized(const struct dbt_session *s)
{
    if (!log_connections) {
        return;
    }
    char tls[160] = "", dn[512] = "", identity[560] = "";
    if (s->st.ssl) {
        snprintf(tls, sizeof(tls), " SSL enabled (protocol=%s, cipher=%s, bits=%d)", s->st.version,
                 s->st.cipher, s->st.bits);
        if (dbt_session_client_cert_dn(s, dn, sizeof(dn))) {
            snprintf(identity, sizeof(identity), " identity=\"%s\"", dn);
        }
    }
    dbt_info("instance \"%s\": connection authorized: user=%s%s%s%s%s%s%s host=%s port=%d",
             s->st.instance, s->st.user, s->st.database[0] ? " database=" : "", s->st.database,
             s->st.application_name[0] ? " application_name=" : "", s->st.application_name, tls,
             identity, s->st.client_addr, s->st.client_port);
}

/* PostgreSQL's log_disconnections line: "session time: H:MM:SS.mmm". */
void dbt_session_log_disconnection(const struct dbt_session *s)
{
    if (!log_disconnections || !s->relay) {
        return;
    }
    uint64_t ms = dbt_now_ms() - s->started_ms;
    dbt_info("instance \"%s\": disconnection: session time: %llu:%02llu:%02llu.%03llu user=%s "
             "database=%s host=%s port=%d",
             s->st.instance, (unsigned long long)(ms / 3600000),
             (unsigned long long)(ms / 60000 % 60), (unsigned long long)(ms / 1000 % 60),
             (unsigned long long)(ms % 1000), s->st.user, s->st.database, s->st.client_addr,
             s->st.client_port);
}
