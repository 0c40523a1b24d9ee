/*
 * ui.c - the web page of dbtlsd (ui.h): GET /ui renders the static frame of src/admin/ui.html
 * (embedded as dbt_ui_page_head / dbt_ui_page_tail by scripts/embed_ui.py) around content built
 * here from the control library (the calls behind /v1/instances, .../serverCerts, .../serverCas,
 * .../sslCerts, /v1/events) and the front's connection list (the rows of /v1/connections).
 * Written with open_memstream; every value that did not come from this file goes through
 * dbt_ui_escape, because instance names, endpoints, certificate DNs, user names and application
 * names all come from users or from the network.
 */
#include "admin/ui.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/internal.h"
#include "base/clock.h"
#include "base/log.h"
#include "ctl/auto.h"
#include "ctl/ctl.h"
#include "dbtls_config.h"

/* Generated from ui.html (scripts/embed_ui.py): NULL-terminated lists of lines. */
extern const char *const dbt_ui_page_head[];
extern const char *const dbt_ui_page_tail[];

/* How many events the page shows (newest first). */
#define UI_EVENTS 15

const char *dbt_ui_expiry_class(int64_t secs_left)
{
    if (secs_left <= 0) {
        return "tl-expired";
    }
    if (secs_left > DBT_UI_OK_SECS) {
        return "tl-ok";
    }
    if (secs_left > DBT_UI_WARN_SECS) {
        return "tl-warn";
    }
    return "tl-crit";
}

void dbt_ui_escape(FILE *f, const char *s)
{
    if (s == NULL) {
        return;
    }
    for (const char *p = s; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*p, f);
            break;
        }
    }
}

/* Escaped s, or an em dash when s is NULL or empty. */
static void esc_or_dash(FILE *f, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        fputs("<span class=\"muted\">&mdash;</span>", f);
    } else {
        dbt_ui_escape(f, s);
    }
}

/* "2026-11-23 18:40 UTC" (display) into buf. */
static void human_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M", &tm) == 0) {
        snprintf(buf, len, "-");
    }
}

/* <time datetime="RFC 3339">2026-11-23 18:40</time> */
static void time_el(FILE *f, int64_t t)
{
    char iso[32], disp[32];
    if (t == 0) {
        fputs("<span class=\"muted\">&mdash;</span>", f);
        return;
    }
    dbt_time_rfc3339(t, iso, sizeof(iso));
    human_time(t, disp, sizeof(disp));
    fprintf(f, "<time class=\"nowrap\" datetime=\"%s\">%s</time>", iso, disp);
}

/* A duration as the page shows it: "364 d", "26 h", "12 min", "40 s". */
static void duration(int64_t secs, char *buf, size_t len)
{
    if (secs < 0) {
        secs = -secs;
    }
    if (secs >= 2 * 86400) {
        snprintf(buf, len, "%lld d", (long long)(secs / 86400));
    } else if (secs >= 2 * 3600) {
        snprintf(buf, len, "%lld h", (long long)(secs / 3600));
    } else if (secs >= 120) {
        snprintf(buf, len, "%lld min", (long long)(secs / 60));
    } else {
        snprintf(buf, len, "%lld s", (long long)secs);
    }
}

/*
 * The timeline of one certificate: a bar whose track is its whole validity (notBefore ..
 * notAfter) and whose filled part is the time still left, coloured by dbt_ui_expiry_class; then
 * the validity dates. Two cells: the bar and the "N d left" label.
 */
static void timeline_cells(FILE *f, const struct dbt_ctl_cert *c, int64_t now)
{
    int64_t left = c->expiration_time - now;
    int64_t total = c->expiration_time - c->not_before;
    double pct = 0.0;
    if (total > 0 && left > 0) {
        pct = (double)left * 100.0 / (double)total;
        pct = pct > 100.0 ? 100.0 : pct;
    }
    const char *cls = dbt_ui_expiry_class(left);
    char from[32], till[32], dur[32];
    human_time(c->not_before, from, sizeof(from));
    human_time(c->expiration_time, till, sizeof(till));
    duration(left, dur, sizeof(dur));
    fprintf(f,
            "<td class=\"timeline\"><div class=\"bar %s\" role=\"meter\" aria-label=\"validity "
            "left\" aria-valuemin=\"0\" aria-valuemax=\"100\" aria-valuenow=\"%.1f\" "
            "data-left-seconds=\"%lld\" title=\"valid %s &#8594; %s UTC\"><span class=\"fill\" "
            "style=\"width:%.1f%%\"></span></div>"
            "<div class=\"small muted nowrap\">%s &#8594; %s UTC</div></td>",
            cls, pct, (long long)left, from, till, pct, from, till);
    if (left > 0) {
        fprintf(f, "<td class=\"nowrap\"><span class=\"left %s\">%s left</span></td>", cls, dur);
    } else {
        fprintf(f, "<td class=\"nowrap\"><span class=\"left %s\">expired %s ago</span></td>", cls,
                dur);
    }
}

/* The cells every certificate row ends with: serial, key algorithm, the validity timeline;
   closes the cell before them and the row. */
static void cert_row_tail(FILE *f, const struct dbt_ctl_cert *c, int64_t now)
{
    fputs("</td><td class=\"mono small\">", f);
    esc_or_dash(f, c->cert_serial_number);
    fputs("</td><td class=\"small nowrap\">", f);
    esc_or_dash(f, c->key_algorithm);
    fputs("</td>", f);
    timeline_cells(f, c, now);
    fputs("</tr>", f);
}

static void error_box(FILE *f, const char *what)
{
    fputs("<div class=\"error\">", f);
    dbt_ui_escape(f, what);
    fputs(": ", f);
    dbt_ui_escape(f, dbt_errmsg()[0] != '\0' ? dbt_errmsg() : "failed");
    fputs("</div>", f);
}

static int slot_rank(const char *slot)
{
    if (slot == NULL) {
        return 3;
    }
    return strcmp(slot, "previous") == 0 ? 0 : strcmp(slot, "active") == 0 ? 1 : 2;
}

/* The slot and client certificate tables share their column widths, so they line up. */
#define CERTS_COLS                                                                                 \
    "<colgroup><col class=\"c-name\"><col><col class=\"c-serial\"><col class=\"c-key\">"           \
    "<col class=\"c-bar\"><col class=\"c-left\"></colgroup>"

/* Counts for the summary cards, gathered while the instances are rendered. */
struct tally {
    size_t instances;
    size_t client_certs;
    size_t expiring; /* active/upcoming slots and client certs with 30 days or less left */
};

/* The live connections of instance that were served the server certificate of slot (in both CA
   modes the slot's leaf: what the connection rows record), from the server-cert slot list. */
static size_t slot_connections(const struct dbt_ctl_cert_list *leaves, const char *slot,
                               const char *instance, const struct dbt_conn_row *rows, size_t n)
{
    const char *sha1 = NULL;
    for (size_t i = 0; i < leaves->n; i++) {
        if (leaves->items[i].slot != NULL && strcmp(leaves->items[i].slot, slot) == 0) {
            sha1 = leaves->items[i].sha1_fingerprint;
        }
    }
    size_t count = 0;
    for (size_t i = 0; sha1 != NULL && i < n; i++) {
        count += rows[i].st.ssl && strcmp(rows[i].st.instance, instance) == 0 &&
                 strcmp(rows[i].st.server_cert_sha1, sha1) == 0;
    }
    return count;
}

static void slots_table(FILE *f, struct dbt_ctl *ctl, const struct dbt_ctl_instance *in,
                        const struct dbt_conn_row *rows, size_t n_rows, int64_t now,
                        struct tally *t)
{
    bool per_instance = in->ca_mode != NULL && strcmp(in->ca_mode, "per-instance") == 0;
    enum dbt_ctl_slot_kind kind = per_instance ? DBT_CTL_SLOT_SERVER_CA : DBT_CTL_SLOT_SERVER_CERT;
    struct dbt_ctl_cert_list l = {0};
    fprintf(f, "<h4>%s</h4>",
            per_instance ? "Server CA slots (per-instance CA: what rotates)"
                         : "Server certificate slots");
    if (!dbt_ok(dbt_ctl_slots_list(ctl, in->name, kind, &l))) {
        error_box(f, "slots");
        dbt_ctl_cert_list_cleanup(&l);
        return;
    }
    struct dbt_ctl_cert_list leaves = {0};
    if (per_instance &&
        !dbt_ok(dbt_ctl_slots_list(ctl, in->name, DBT_CTL_SLOT_SERVER_CERT, &leaves))) {
        dbt_ctl_cert_list_cleanup(&leaves); /* no counts then; the slots still show */
    }
    fputs("<table class=\"certs slots\">" CERTS_COLS
          "<thead><tr><th>Slot</th><th>Common name</th><th>Serial</th>"
          "<th>Key</th><th>Validity</th><th>Time left</th></tr></thead><tbody>",
          f);
    /* chronological: previous, active, upcoming (the list comes active, upcoming, previous) */
    for (int rank = 0; rank <= 3; rank++) {
        for (size_t i = 0; i < l.n; i++) {
            const struct dbt_ctl_cert *c = &l.items[i];
            if (slot_rank(c->slot) != rank) {
                continue;
            }
            if (rank > 0 && c->expiration_time - now <= DBT_UI_WARN_SECS) {
                t->expiring++;
            }
            fputs("<tr class=\"slot slot-", f);
            dbt_ui_escape(f, c->slot);
            fputs("\" data-slot=\"", f);
            dbt_ui_escape(f, c->slot);
            fputs("\" data-serial=\"", f);
            dbt_ui_escape(f, c->cert_serial_number);
            /* who is still on it: the rotation evidence (connections served this slot's leaf) */
            size_t conns =
                slot_connections(per_instance ? &leaves : &l, c->slot, in->name, rows, n_rows);
            fprintf(f, "\" data-connections=\"%zu\"><td class=\"slot\"><span class=\"slotname\">",
                    conns);
            esc_or_dash(f, c->slot);
            fputs("</span>", f);
            if (conns > 0) {
                fprintf(f, "<div class=\"muted small\">%zu connection%s</div>", conns,
                        conns == 1 ? "" : "s");
            }
            fputs("</td><td class=\"mono\">", f);
            esc_or_dash(f, c->common_name);
            cert_row_tail(f, c, now);
        }
    }
    if (l.n == 0) {
        fputs("<tr><td colspan=\"6\" class=\"empty\">no slots</td></tr>", f);
    }
    fputs("</tbody></table>", f);
    dbt_ctl_cert_list_cleanup(&l);
    dbt_ctl_cert_list_cleanup(&leaves);
}

static void client_certs_table(FILE *f, struct dbt_ctl *ctl, const struct dbt_ctl_instance *in,
                               int64_t now, struct tally *t)
{
    struct dbt_ctl_cert_list l = {0};
    fprintf(f, "<h4>Client certificates (%d of at most %d)</h4>", in->n_client_certs,
            in->max_client_certs);
    if (!dbt_ok(dbt_ctl_client_cert_list(ctl, in->name, &l))) {
        error_box(f, "client certificates");
        dbt_ctl_cert_list_cleanup(&l);
        return;
    }
    t->client_certs += l.n;
    if (l.n == 0) {
        fputs("<div class=\"empty\">no client certificates</div>", f);
        dbt_ctl_cert_list_cleanup(&l);
        return;
    }
    fputs("<table class=\"certs client-certs\">" CERTS_COLS
          "<thead><tr><th>Name</th><th>SHA-1 fingerprint</th>"
          "<th>Serial</th><th>Key</th><th>Validity</th><th>Time left</th></tr></thead><tbody>",
          f);
    for (size_t i = 0; i < l.n; i++) {
        const struct dbt_ctl_cert *c = &l.items[i];
        if (c->expiration_time - now <= DBT_UI_WARN_SECS) {
            t->expiring++;
        }
        fputs("<tr class=\"client-cert\" data-name=\"", f);
        dbt_ui_escape(f, c->name);
        fputs("\"><td><strong>", f);
        esc_or_dash(f, c->name);
        fputs("</strong></td><td class=\"mono small\">", f);
        esc_or_dash(f, c->sha1_fingerprint);
        cert_row_tail(f, c, now);
    }
    fputs("</tbody></table>", f);
    dbt_ctl_cert_list_cleanup(&l);
}

static void fact(FILE *f, const char *label, const char *value)
{
    fprintf(f, "<div><dt>%s</dt><dd>", label);
    esc_or_dash(f, value);
    fputs("</dd></div>", f);
}

static void instance_card(FILE *f, struct dbt_ctl *ctl, const struct dbt_ctl_instance *in,
                          const struct dbt_conn_row *rows, size_t n_rows, int64_t now,
                          struct tally *t)
{
    const char *mode = dbt_ctl_ssl_mode_name(in->ssl_mode);
    fputs("<article class=\"card instance\" data-instance=\"", f);
    dbt_ui_escape(f, in->name);
    fputs("\"><div class=\"inst-head\"><h3>", f);
    dbt_ui_escape(f, in->name);
    fputs("</h3><span class=\"badge engine\">", f);
    dbt_ui_escape(f, in->engine);
    fputs(" ", f);
    dbt_ui_escape(f, in->engine_version);
    fputs("</span><span class=\"badge ssl-mode mode-", f);
    dbt_ui_escape(f, mode);
    fputs("\" title=\"ssl mode\">", f);
    dbt_ui_escape(f, mode);
    fputs("</span></div><dl class=\"facts\">", f);
    fact(f, "Listen", in->listen);
    fact(f, "Backend", in->backend);
    fputs("<div><dt>Endpoints (SAN)</dt><dd>", f);
    for (size_t i = 0; i < in->n_endpoints; i++) {
        if (i > 0) {
            fputs(", ", f);
        }
        dbt_ui_escape(f, in->endpoints[i]);
    }
    if (in->n_endpoints == 0) {
        esc_or_dash(f, NULL);
    }
    fputs("</dd></div>", f);
    fact(f, "Region", in->region);
    fact(f, "CA mode", in->ca_mode);
    fact(f, "CA", in->ca_id);
    fputs("<div><dt>TLS</dt><dd>", f);
    dbt_ui_escape(f, in->tls_min);
    fputs(" &#8211; ", f);
    dbt_ui_escape(f, in->tls_max);
    fputs("</dd></div>", f);
    struct dbt_ctl_rotation rot = {0};
    char rbuf[64];
    if (dbt_ok(dbt_ctl_rotation_get(ctl, in->name, &rot))) {
        snprintf(rbuf, sizeof(rbuf), "%s, %d days ahead", rot.auto_rotate ? "automatic" : "manual",
                 rot.lead_days);
    } else {
        snprintf(rbuf, sizeof(rbuf), "unknown");
    }
    fact(f, "Rotation", rbuf);
    fputs("</dl>", f);
    slots_table(f, ctl, in, rows, n_rows, now, t);
    client_certs_table(f, ctl, in, now, t);
    fputs("</article>", f);
}

static void instances_section(FILE *f, struct dbt_ctl *ctl, const struct dbt_conn_row *rows,
                              size_t n_rows, int64_t now, struct tally *t)
{
    fputs("<section id=\"instances\"><h2>Instances", f);
    if (ctl == NULL) {
        fputs("</h2><div class=\"empty\">this listener serves no control plane</div></section>", f);
        return;
    }
    struct dbt_ctl_instance_list l = {0};
    if (!dbt_ok(dbt_ctl_instance_list(ctl, &l))) {
        fputs("</h2>", f);
        error_box(f, "instances");
        fputs("</section>", f);
        dbt_ctl_instance_list_cleanup(&l);
        return;
    }
    t->instances = l.n;
    fprintf(f,
            "<span class=\"count\">%zu</span><span class=\"legend\">time left:"
            "<i style=\"background:var(--ok)\"></i>over 90 days"
            "<i style=\"background:var(--warn)\"></i>30&#8211;90 days"
            "<i style=\"background:var(--crit)\"></i>30 days or less"
            "<i style=\"background:var(--dead)\"></i>expired</span></h2>",
            l.n);
    for (size_t i = 0; i < l.n; i++) {
        instance_card(f, ctl, &l.items[i], rows, n_rows, now, t);
    }
    if (l.n == 0) {
        fputs("<div class=\"card empty\">no instances yet: <code>dbtls instances create "
              "NAME &#8230;</code></div>",
              f);
    }
    fputs("</section>", f);
    dbt_ctl_instance_list_cleanup(&l);
}

static void connections_section(FILE *f, const struct dbt_conn_row *rows, size_t n, int64_t now)
{
    fprintf(f,
            "<section id=\"connections\"><h2>Live connections<span class=\"count\">%zu</span>"
            "</h2>",
            n);
    if (n == 0) {
        fputs("<div class=\"card empty\">no connections through the front</div></section>", f);
        return;
    }
    fputs("<table class=\"list connections\"><thead><tr><th>Instance</th><th>Client</th>"
          "<th>User</th><th>Database</th><th>Application</th><th>TLS</th><th>Cipher</th>"
          "<th>Bits</th><th>Client certificate</th><th>Since</th><th>State</th>"
          "<th>Bytes in / out</th></tr></thead><tbody>",
          f);
    for (size_t i = 0; i < n; i++) {
        const struct dbt_session_status *st = &rows[i].st;
        char dur[32];
        duration(now - st->backend_start, dur, sizeof(dur));
        fputs("<tr class=\"connection\" data-instance=\"", f);
        dbt_ui_escape(f, st->instance);
        fputs("\" data-tls-version=\"", f);
        dbt_ui_escape(f, st->ssl ? st->version : "");
        fputs("\" data-server-cert=\"", f);
        dbt_ui_escape(f, st->ssl ? st->server_cert_sha1 : "");
        fputs("\"><td>", f);
        esc_or_dash(f, st->instance);
        fputs("</td><td class=\"mono nowrap\">", f);
        bool v6 = strchr(st->client_addr, ':') != NULL;
        fputs(v6 ? "[" : "", f);
        esc_or_dash(f, st->client_addr);
        fputs(v6 ? "]" : "", f);
        if (st->client_port > 0) {
            fprintf(f, ":%d", st->client_port);
        }
        fputs("</td><td>", f);
        esc_or_dash(f, st->user);
        fputs("</td><td>", f);
        esc_or_dash(f, st->database);
        fputs("</td><td>", f);
        esc_or_dash(f, st->application_name);
        fputs("</td><td>", f);
        if (st->ssl) {
            fputs("<span class=\"tls\">", f);
            esc_or_dash(f, st->version);
            /* which server certificate it was served: after a rotation, who is still on the
               previous one (the fingerprint as the certificate cards show it) */
            fputs("</span><div class=\"muted small mono\" title=\"server certificate SHA-1 ", f);
            dbt_ui_escape(f, st->server_cert_sha1);
            fprintf(f, "\">cert %.10s</div></td><td class=\"mono small\">", st->server_cert_sha1);
            esc_or_dash(f, st->cipher);
            fprintf(f, "</td><td>%d</td><td class=\"small\">", st->bits);
            const struct dbt_session_cert *cert = &rows[i].cert;
            if (cert->client_dn[0] != '\0') {
                dbt_ui_escape(f, cert->client_dn);
                fputs("<div class=\"muted\">serial ", f);
                esc_or_dash(f, cert->client_serial);
                fputs("</div>", f);
            } else {
                esc_or_dash(f, NULL);
            }
        } else {
            fputs("<span class=\"tls none\">none</span></td><td>", f);
            esc_or_dash(f, NULL);
            fputs("</td><td>", f);
            esc_or_dash(f, NULL);
            fputs("</td><td>", f);
            esc_or_dash(f, NULL);
        }
        fputs("</td><td class=\"nowrap\">", f);
        time_el(f, st->backend_start);
        fprintf(f, " <span class=\"muted small\">(%s)</span></td><td class=\"small\">", dur);
        esc_or_dash(f, st->state);
        fprintf(f, "</td><td class=\"nowrap\">%llu / %llu</td></tr>",
                (unsigned long long)rows[i].bytes_in, (unsigned long long)rows[i].bytes_out);
    }
    fputs("</tbody></table></section>", f);
}

static void events_section(FILE *f, struct dbt_ctl *ctl)
{
    fputs("<section id=\"events\"><h2>Recent events</h2>", f);
    if (ctl == NULL) {
        fputs("<div class=\"empty\">this listener serves no control plane</div></section>", f);
        return;
    }
    struct dbt_ctl_event_list l = {0};
    if (!dbt_ok(dbt_ctl_events_list(ctl, NULL, UI_EVENTS, &l))) {
        error_box(f, "events");
        fputs("</section>", f);
        dbt_ctl_event_list_cleanup(&l);
        return;
    }
    fputs("<table class=\"list events\"><thead><tr><th>Time (UTC)</th><th>Actor</th>"
          "<th>Action</th><th>Object</th><th>Detail</th></tr></thead><tbody>",
          f);
    for (size_t i = l.n; i-- > 0;) { /* newest first */
        const struct dbt_ctl_event *e = &l.items[i];
        fputs("<tr class=\"event\"><td>", f);
        time_el(f, e->time);
        fputs("</td><td>", f);
        esc_or_dash(f, e->actor);
        fputs("</td><td class=\"mono nowrap\">", f);
        esc_or_dash(f, e->action);
        fputs("</td><td class=\"mono small nowrap\">", f);
        esc_or_dash(f, e->object);
        fputs("</td><td class=\"small detail\">", f);
        esc_or_dash(f, e->detail);
        fputs("</td></tr>", f);
    }
    if (l.n == 0) {
        fputs("<tr><td colspan=\"5\" class=\"empty\">no events</td></tr>", f);
    }
    fputs("</tbody></table></section>", f);
    dbt_ctl_event_list_cleanup(&l);
}

static void summary(FILE *f, const struct tally *t, const struct dbt_conn_row *rows, size_t n,
                    bool have_ctl)
{
    size_t tls = 0;
    for (size_t i = 0; i < n; i++) {
        tls += rows[i].st.ssl ? 1 : 0;
    }
    fputs("<div class=\"summary\">", f);
    if (have_ctl) {
        fprintf(f,
                "<div class=\"stat\"><div class=\"n\">%zu</div><div class=\"l\">instances</div>"
                "</div>",
                t->instances);
    }
    fprintf(f,
            "<div class=\"stat\"><div class=\"n\">%zu</div><div class=\"l\">live connections "
            "(%zu with TLS)</div></div>",
            n, tls);
    if (have_ctl) {
        fprintf(f,
                "<div class=\"stat\"><div class=\"n\">%zu</div><div class=\"l\">client "
                "certificates</div></div>"
                "<div class=\"stat%s\" id=\"expiring\"><div class=\"n\">%zu</div><div "
                "class=\"l\">certificates expiring within 30 days</div></div>",
                t->client_certs, t->expiring > 0 ? " alert" : "", t->expiring);
    }
    fputs("</div>", f);
}

dbt_res dbt_ui_render(struct dbt_ctl *ctl, const struct dbt_conn_row *rows, size_t n_rows,
                      int64_t now, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *body = NULL, *page = NULL;
    size_t body_len = 0, page_len = 0;
    struct tally t = {0};

    /* The sections first (they fill the tally), then the page around them. */
    FILE *f = open_memstream(&body, &body_len);
    if (f == NULL) {
        return dbt_fail(DBT_E_NOMEM, "web page: out of memory");
    }
    instances_section(f, ctl, rows, n_rows, now, &t);
    connections_section(f, rows, n_rows, now);
    events_section(f, ctl);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        free(body);
        return dbt_fail(DBT_E_NOMEM, "web page: out of memory");
    }

    FILE *p = open_memstream(&page, &page_len);
    if (p == NULL) {
        free(body);
        return dbt_fail(DBT_E_NOMEM, "web page: out of memory");
    }
    for (size_t i = 0; dbt_ui_page_head[i] != NULL; i++) {
        fputs(dbt_ui_page_head[i], p);
    }
    char iso[32], disp[32];
    dbt_time_rfc3339(now, iso, sizeof(iso));
    human_time(now, disp, sizeof(disp));
    fprintf(p,
            "<header class=\"top\"><div class=\"brand\">dbtls<small>TLS front and certificate "
            "authority &#183; dbtlsd %s</small></div><div class=\"meta\"><span>updated "
            "<time id=\"updated\" datetime=\"%s\">%s UTC</time></span>"
            "<span id=\"refresh-status\" class=\"pill off\">reloads every 30 s</span></div>"
            "</header>\n<main id=\"main\">",
            DBTLS_VERSION, iso, disp);
    summary(p, &t, rows, n_rows, ctl != NULL);
    fwrite(body, 1, body_len, p);
    fputs("</main>\n", p);
    for (size_t i = 0; dbt_ui_page_tail[i] != NULL; i++) {
        fputs(dbt_ui_page_tail[i], p);
    }
    free(body);
    bad = ferror(p) != 0;
    if (fclose(p) != 0 || bad) {
        free(page);
        return dbt_fail(DBT_E_NOMEM, "web page: out of memory");
    }
    *out = page;
    *len = page_len;
    return DBT_OK;
}

void dbt_admin_ui(struct dbt_admin_ctx *x, const char *method, struct dbt_admin_reply *out)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        dbt_admin_error(out, 405, "%s is not allowed on /ui; allowed: GET, HEAD", method);
        out->allow = "GET, HEAD";
        return;
    }
    struct dbt_conn_row *rows = NULL;
    size_t n = 0;
    if (!dbt_ok(dbt_front_connections(x->front, &rows, &n))) {
        dbt_admin_error(out, 500, "%s", dbt_errmsg());
        return;
    }
    char *page = NULL;
    size_t len = 0;
    dbt_res r = dbt_ui_render(x->ctl, rows, n, dbt_now_unix(), &page, &len);
    free(rows);
    if (!dbt_ok(r)) {
        dbt_admin_error(out, 500, "%s", dbt_errmsg());
        return;
    }
    out->status = 200;
    out->body = page;
    out->len = len;
    out->content_type = DBT_UI_CONTENT_TYPE;
}
