/*
 * my_session.h - what the MySQL front (my_session.c) offers the session layer beyond its
 * dbt_proto table (dbt_my_proto, declared in session.h).
 */
#ifndef DBT_FRONT_MY_SESSION_H
#define DBT_FRONT_MY_SESSION_H

#include "base/err.h"

struct dbt_session;

/*
 * Relay-mode check of the client's bytes, for a session-layer hook that runs after each client
 * read in relay mode, before those bytes are written to the backend (s->client.in holds exactly
 * the new bytes then). MySQL re-checks the REQUIRE rules of the new account on COM_CHANGE_USER;
 * this does the same for the front's rules: a change to an account whose rule the connection
 * does not meet drops the bytes, queues ERR 1045 and finishes the session (as MySQL closes a
 * connection whose change of user failed). Costs a header walk per packet, no copy; does nothing
 * for instances without REQUIRE rules.
 */
dbt_res dbt_my_relay_client_check(struct dbt_session *s) DBT_WUR;

#endif
