/*
 * test_ui.c - the web page renderer (src/admin/ui.c) without a daemon: HTML escaping of every
 * character that matters, the time-left classes of the timeline bars at their exact boundaries,
 * and a page rendered from connection rows carrying hostile strings (as a client can send in
 * user, database and application_name) with no control plane. The page with real instances,
 * slots and a real browser is tests/integration/test_ui.py.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/ui.h"
#include "check.h"

static char *escaped(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dbt_ui_escape(f, s);
    fclose(f);
    return buf;
}

static void test_escape(void)
{
    char *e = escaped("a<b>&\"c\"'d'");
    CHECK(strcmp(e, "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39;") == 0);
    free(e);
    e = escaped("plain text, ünïcode");
    CHECK(strcmp(e, "plain text, ünïcode") == 0);
    free(e);
    e = escaped("");
    CHECK(strcmp(e, "") == 0);
    free(e);
    e = escaped(NULL);
    CHECK(e != NULL && e[0] == '\0');
    free(e);
    /* an attribute cannot be closed early: no quote survives */
    e = escaped("x\" onmouseover=\"alert(1)");
    CHECK(strchr(e, '"') == NULL && strchr(e, '\'') == NULL);
    free(e);
}

static void test_expiry_class(void)
{
    const int64_t day = 86400;
    CHECK(strcmp(dbt_ui_expiry_class(365 * day), "tl-ok") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(90 * day + 1), "tl-ok") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(90 * day), "tl-warn") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(30 * day + 1), "tl-warn") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(30 * day), "tl-crit") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(1), "tl-crit") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(0), "tl-expired") == 0);
    CHECK(strcmp(dbt_ui_expiry_class(-5 * day), "tl-expired") == 0);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void test_render_connections_only(void)
{
    struct dbt_conn_row rows[2];
    memset(rows, 0, sizeof(rows));
    struct dbt_session_status *a = &rows[0].st;
    snprintf(a->instance, sizeof(a->instance), "db1");
    snprintf(a->client_addr, sizeof(a->client_addr), "127.0.0.1");
    a->client_port = 51234;
    snprintf(a->user, sizeof(a->user), "<img src=x onerror=alert(1)>");
    snprintf(a->database, sizeof(a->database), "app\"db");
    snprintf(a->application_name, sizeof(a->application_name), "</td><script>evil()</script>");
    a->ssl = true;
    snprintf(a->version, sizeof(a->version), "TLSv1.3");
    snprintf(a->cipher, sizeof(a->cipher), "TLS_AES_256_GCM_SHA384");
    a->bits = 256;
    snprintf(rows[0].cert.client_dn, sizeof(rows[0].cert.client_dn), "CN=app & <co>");
    snprintf(rows[0].cert.client_serial, sizeof(rows[0].cert.client_serial), "0A1B");
    a->backend_start = 1795000000;
    snprintf(a->state, sizeof(a->state), "relay");
    rows[0].bytes_in = 1200;
    rows[0].bytes_out = 34000;
    struct dbt_session_status *b = &rows[1].st;
    snprintf(b->instance, sizeof(b->instance), "db2");
    snprintf(b->client_addr, sizeof(b->client_addr), "::1");
    b->client_port = 40000;
    b->backend_start = 1795000000;
    snprintf(b->state, sizeof(b->state), "startup");

    char *page = NULL;
    size_t len = 0;
    CHECK_OK(dbt_ui_render(NULL, rows, 2, 1795000100, &page, &len));
    if (page == NULL) {
        return;
    }
    CHECK(strlen(page) == len);
    CHECK(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(page, "</html>\n") != NULL);
    CHECK(count(page, "<main id=\"main\">") == 1 && count(page, "</main>") == 1);
    /* the frame's script is there once; the hostile values are text, never markup */
    CHECK(count(page, "<script>") == 1);
    CHECK(strstr(page, "<img") == NULL);
    CHECK(strstr(page, "&lt;img src=x onerror=alert(1)&gt;") != NULL);
    CHECK(strstr(page, "&lt;/td&gt;&lt;script&gt;evil()&lt;/script&gt;") != NULL);
    CHECK(strstr(page, "app&quot;db") != NULL);
    CHECK(strstr(page, "CN=app &amp; &lt;co&gt;") != NULL);
    /* both rows, the TLS one with its version and cipher, the plain one marked */
    CHECK(count(page, "<tr class=\"connection\"") == 2);
    CHECK(strstr(page, "data-tls-version=\"TLSv1.3\"") != NULL);
    CHECK(strstr(page, "TLS_AES_256_GCM_SHA384") != NULL);
    CHECK(strstr(page, "<span class=\"tls none\">none</span>") != NULL);
    CHECK(strstr(page, "1200 / 34000") != NULL);
    CHECK(strstr(page, ">127.0.0.1:51234<") != NULL);
    CHECK(strstr(page, ">[::1]:40000<") != NULL);
    CHECK(strstr(page, "live connections (1 with TLS)") != NULL);
    CHECK(strstr(page, "(100 s)") != NULL || strstr(page, "(2 min)") != NULL);
    /* without a control plane the other sections say so instead of failing */
    CHECK(count(page, "this listener serves no control plane") == 2);
    free(page);

    /* no connections at all */
    CHECK_OK(dbt_ui_render(NULL, NULL, 0, 1795000100, &page, &len));
    CHECK(page != NULL && strstr(page, "no connections through the front") != NULL);
    free(page);
}

int main(void)
{
    test_escape();
    test_expiry_class();
    test_render_connections_only();
    return check_exit();
}
