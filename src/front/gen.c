/*
 * gen.c - configuration generations (front.h): a snapshot from the control plane turned into
 * everything the workers need, built and validated whole before it may replace the current one.
 * TLS contexts are built here, once per instance per generation, never on accept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "front/rules/share.h"
#include "front/front.h"
#include "tls/tls.h"

static void inst_cleanup(struct dbt_gen_inst *gi)
{
    if (gi->proto != NULL && gi->proto->inst_free != NULL && gi->proto_conf != NULL) {
        gi->proto->inst_free(gi->proto_conf);
    }
    dbt_tls_ctx_unref(gi->server_tls);
    dbt_tls_ctx_unref(gi->backend_tls);
    free((void *)gi->names);
}

static void gen_free(struct dbt_gen *g)
{
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        inst_cleanup(&g->insts[i]);
    }
    free(g->insts);
    free(g->listen);
    if (g->cfg != NULL && g->free_config != NULL) {
        g->free_config(g->cfg);
    }
    free(g);
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether o's server TLS context is what rt would build. */
static bool same_server_tls(const struct dbt_gen_inst *o, const struct dbt_rt_instance *rt,
                            const struct dbt_proto *proto)
{
    const struct dbt_rt_instance *p = o->rt;
    return o->proto == proto && o->server_tls != NULL &&
           same_text(p->cert_chain_pem, rt->cert_chain_pem) && same_text(p->key_pem, rt->key_pem) &&
           same_text(p->client_ca_pem, rt->client_ca_pem) && same_text(p->crl_pem, rt->crl_pem) &&
           same_text(p->tls_min, rt->tls_min) && same_text(p->tls_max, rt->tls_max) &&
           same_text(p->ciphers, rt->ciphers) && same_text(p->ciphersuites, rt->ciphersuites) &&
           same_text(p->groups, rt->groups);
}

/* prev's instance named name, or NULL. *hint: where to look first (the same order mostly). */
static const struct dbt_gen_inst *prev_inst(const struct dbt_gen *prev, size_t *hint,
                                            const char *name)
{
    if (prev == NULL || name == NULL) {
        return NULL;
    }
    if (*hint < prev->n && strcmp(prev->insts[*hint].rt->name, name) == 0) {
        return &prev->insts[(*hint)++];
    }
    for (size_t i = 0; i < prev->n; i++) {
        if (strcmp(prev->insts[i].rt->name, name) == 0) {
            *hint = i + 1;
            return &prev->insts[i];
        }
    }
    return NULL;
}

static dbt_res inst_build(const struct dbt_rt_instance *rt, const struct dbt_gen_inst *old,
                          struct dbt_gen_inst *gi, struct dbt_addr *listen)
{
    dbt_res res = DBT_OK;
    gi->rt = rt;
    gi->proto = dbt_proto_for_engine(rt->engine);
    DBT_ENSURE(gi->proto != NULL, INVALID, "engine \"%s\" is not supported by this dbtlsd",
               rt->engine ? rt->engine : "(none)");
    DBT_TRY(dbt_addr_parse(rt->listen, listen));
    struct dbt_addr backend;
    DBT_TRY(dbt_addr_parse(rt->backend, &backend));
    gi->backend_addr = backend.ss;
    gi->backend_addrlen = backend.len;
    snprintf(gi->backend_host, sizeof(gi->backend_host), "%s", backend.host);
    struct dbt_tls_policy pol = {
        .min_version = rt->tls_min,
        .max_version = rt->tls_max,
        .ciphers = rt->ciphers,
        .ciphersuites = rt->ciphersuites,
        .groups = rt->groups,
        .session_tickets = false,
    };
    bool is_pg = gi->proto == &dbt_pg_proto;
    if (old != NULL && same_server_tls(old, rt, gi->proto)) {
        gi->server_tls = dbt_tls_ctx_ref(old->server_tls);
        gi->reused = true;
    } else {
        DBT_TRY(dbt_tls_server_ctx_new(rt->cert_chain_pem, rt->key_pem, rt->client_ca_pem,
                                       rt->crl_pem, &pol, is_pg, &gi->server_tls));
    }
    if (rt->backend_tls_ca != NULL && rt->backend_tls_ca[0] != '\0') {
        const char *cert = rt->backend_tls_cert, *key = rt->backend_tls_key;
        DBT_TRY(dbt_tls_client_ctx_new(rt->backend_tls_ca, cert && *cert ? cert : NULL,
                                       key && *key ? key : NULL, &gi->backend_tls));
    }
    if (gi->proto->inst_prepare != NULL) {
        DBT_TRY(gi->proto->inst_prepare(rt, &gi->proto_conf));
    }
out:
    return res;
}

static struct dbt_share_inst share_of(const struct dbt_rt_instance *r)
{
    return (struct dbt_share_inst){.name = r->name,
                                   .engine = r->engine,
                                   .listen = r->listen,
                                   .groups = r->groups,
                                   .endpoints = (const char *const *)r->endpoints,
                                   .n_endpoints = r->n_endpoints};
}

static int name_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct dbt_gen_name *)a)->name,
                      ((const struct dbt_gen_name *)b)->name);
}

/* Sorts the DNS endpoints of the address first listens on; one name on two instances fails. */
static dbt_res index_names(struct dbt_gen_inst *first)
{
    dbt_res res = DBT_OK;
    size_t n = 0;
    for (const struct dbt_gen_inst *m = first; m != NULL; m = m->listen_next) {
        for (size_t i = 0; i < m->rt->n_endpoints; i++) {
            n += dbt_share_endpoint_is_name(m->rt->endpoints[i]);
        }
    }
    struct dbt_gen_name *v = calloc(n ? n : 1, sizeof(*v));
    DBT_ENSURE(v != NULL, NOMEM, "generation: out of memory");
    size_t k = 0;
    for (const struct dbt_gen_inst *m = first; m != NULL; m = m->listen_next) {
        for (size_t i = 0; i < m->rt->n_endpoints; i++) {
            if (dbt_share_endpoint_is_name(m->rt->endpoints[i])) {
                v[k++] = (struct dbt_gen_name){m->rt->endpoints[i], m};
            }
        }
    }
    qsort(v, n, sizeof(*v), name_cmp);
    first->names = v;
    first->n_names = n;
    for (size_t i = 1; i < n; i++) {
        DBT_ENSURE(v[i].inst == v[i - 1].inst || name_cmp(&v[i], &v[i - 1]) != 0, INVALID,
                   "instance \"%s\": endpoint %s is also one of instance \"%s\" on listen "
                   "address %s",
                   v[i].inst->rt->name, v[i].name, v[i - 1].inst->rt->name, first->rt->listen);
    }
out:
    return res;
}

const struct dbt_gen_inst *dbt_gen_sni_find(const struct dbt_gen_inst *inst,
                                            const char *server_name)
{
    const struct dbt_gen_inst *first = inst->listen_first;
    struct dbt_gen_name key = {.name = server_name};
    const struct dbt_gen_name *hit =
        bsearch(&key, first->names, first->n_names, sizeof(key), name_cmp);
    if (hit != NULL) {
        return hit->inst;
    }
    const char *dot = strchr(server_name, '.');
    char wild[260];
    if (dot == NULL || dot == server_name ||
        (size_t)snprintf(wild, sizeof(wild), "*%s", dot) >= sizeof(wild)) {
        return NULL;
    }
    key.name = wild;
    hit = bsearch(&key, first->names, first->n_names, sizeof(key), name_cmp);
    return hit != NULL ? hit->inst : NULL;
}

/* Links the instances of each listen address (in store order: the first created comes first),
   checks each joins the first's (dbt_share_check; endpoints across all by index_names). */
static dbt_res group_listeners(struct dbt_gen *g)
{
    dbt_res res = DBT_OK;
    for (size_t i = 0; i < g->n; i++) {
        struct dbt_gen_inst *gi = &g->insts[i];
        if (gi->listen_first != NULL) {
            continue;
        }
        struct dbt_gen_inst *last = gi;
        gi->listen_first = gi;
        for (size_t j = i + 1; j < g->n; j++) {
            struct dbt_gen_inst *o = &g->insts[j];
            if (strcmp(o->rt->listen, gi->rt->listen) != 0) {
                continue;
            }
            struct dbt_share_inst a = share_of(gi->rt), b = share_of(o->rt);
            res = dbt_share_check(&a, &b);
            if (!dbt_ok(res)) {
                res = dbt_fail_ctx(res, "instance \"%s\": ", o->rt->name);
                goto out;
            }
            o->listen_first = gi;
            last->listen_next = o;
            last = o;
        }
        if (gi->listen_next != NULL) {
            for (struct dbt_gen_inst *m = gi; m != NULL;
                 m = (struct dbt_gen_inst *)m->listen_next) {
                m->listen_shared = true;
            }
            DBT_TRY(index_names(gi));
        }
    }
out:
    return res;
}

dbt_res dbt_gen_build(struct dbt_rt_config *cfg, void (*free_config)(struct dbt_rt_config *),
                      uint64_t id, const struct dbt_gen *prev, struct dbt_gen **out)
{
    dbt_res res = DBT_OK;
    struct dbt_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        if (free_config != NULL) {
            free_config(cfg);
        }
        return dbt_fail(DBT_E_NOMEM, "generation: out of memory");
    }
    g->free_config = free_config;
    atomic_init(&g->refs, 1);
    g->id = id;
    g->cfg = cfg;
    if (cfg->n_instances > 0) {
        g->insts = calloc(cfg->n_instances, sizeof(*g->insts));
        g->listen = calloc(cfg->n_instances, sizeof(*g->listen));
        DBT_ENSURE(g->insts != NULL && g->listen != NULL, NOMEM, "generation: out of memory");
    }
    size_t hint = 0;
    for (size_t i = 0; i < cfg->n_instances; i++) {
        const struct dbt_rt_instance *rt = &cfg->instances[i];
        g->n = i + 1;
        res = inst_build(rt, prev_inst(prev, &hint, rt->name), &g->insts[i], &g->listen[i]);
        g->n_reused += g->insts[i].reused;
        if (!dbt_ok(res)) {
            res = dbt_fail_ctx(res, "instance \"%s\": ", rt->name ? rt->name : "?");
            goto out;
        }
    }
    DBT_TRY(group_listeners(g));
    *out = g;
    g = NULL;
out:
    gen_free(g);
    return res;
}

struct dbt_gen *dbt_gen_ref(struct dbt_gen *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

int64_t dbt_gen_refresh_at(const struct dbt_gen *g, int64_t now)
{
    int64_t earliest = INT64_MAX;
    for (size_t i = 0; g->cfg != NULL && i < g->cfg->n_instances; i++) {
        int64_t next = g->cfg->instances[i].crl_next_update;
        if (next > 0 && next < earliest) {
            earliest = next;
        }
    }
    if (earliest == INT64_MAX) {
        return INT64_MAX;
    }
    int64_t at = earliest > now ? now + (earliest - now) / 2 : now;
    return at < now + 60 ? now + 60 : at;
}

void dbt_gen_unref(struct dbt_gen *g)
{
    if (g != NULL && atomic_fetch_sub(&g->refs, 1) == 1) {
        dbt_debug("generation %llu freed", (unsigned long long)g->id);
        gen_free(g);
    }
}

const struct dbt_gen_inst *dbt_gen_find_listen(const struct dbt_gen *g, const char *listen_key)
{
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->insts[i].rt->listen, listen_key) == 0) {
            return &g->insts[i];
        }
    }
    return NULL;
}
