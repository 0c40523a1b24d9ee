/*
 * ctl_refused.h - for the ctl unit tests: what a refused control operation must leave as it was
 * (the store's change counter and the number of events). Include after declaring the test's
 * `static struct dbt_ctl *ctl;` handle and check.h.
 */
#ifndef DBT_TESTS_CTL_REFUSED_H
#define DBT_TESTS_CTL_REFUSED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl/ctl.h"

/* What must not move when an operation is refused. */
struct snap {
    uint64_t counter;
    size_t events;
};

static struct snap snap(void)
{
    struct snap s = {0};
    struct dbt_ctl_event_list ev = {0};
    CHECK_OK(dbt_ctl_change_counter(ctl, &s.counter));
    CHECK_OK(dbt_ctl_events_list(ctl, NULL, 0, &ev));
    s.events = ev.n;
    dbt_ctl_event_list_cleanup(&ev);
    return s;
}

static inline bool same(struct snap a, struct snap b)
{
    return a.counter == b.counter && a.events == b.events;
}

/* expr fails with code and changes nothing. */
#define CHECK_REFUSED(expr, code)                                                                  \
    do {                                                                                           \
        struct snap before_ = snap();                                                              \
        CHECK_ERR(expr, code);                                                                     \
        CHECK(same(before_, snap()));                                                              \
    } while (0)

#endif
