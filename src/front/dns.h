/*
 * dns.h - backends named by host name: a generation resolves each backend once, when it is
 * built; the loader asks here every --backend-dns-interval seconds whether the address in use
 * is still among the name's addresses, and reloads (re-resolving) when it is not. So a failover
 * that moves a DNS name (RDS Multi-AZ, Patroni with a DNS record, a cloud private zone) reaches
 * new connections without a SIGHUP, as PgBouncer's dns_max_ttl does; open sessions stay where
 * they are.
 */
#ifndef DBT_FRONT_DNS_H
#define DBT_FRONT_DNS_H

#include <stdbool.h>
#include <stddef.h>

#include "front/front.h"

/*
 * The first instance of g whose backend host name no longer resolves to the address in use: a
 * line for the log into why ("instance "pg1": backend db.internal now resolves to 10.0.0.8, not
 * 10.0.0.7"). A name that does not resolve at the moment is logged (once per failure streak,
 * tracked in warned[g->n]) and keeps its address. Blocking (getaddrinfo): loader thread only.
 */
bool dbt_dns_backend_moved(const struct dbt_gen *g, bool *warned, char *why, size_t n);

#endif
