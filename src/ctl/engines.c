/*
 * engines.c - the table of supported engine versions (like `aws rds
 * describe-db-engine-versions`): supported CA ids, TLS versions, default ciphers and the exact
 * wording of the errors the TLS front must reproduce; and the ssl mode names.
 *
 * Sources: PostgreSQL's ssl_min_protocol_version docs (TLSv1.2 default since 12) and
 * auth.c ClientAuthentication ("no encryption" since 14, "SSL off" before); MySQL 5.7 supports
 * TLSv1..TLSv1.2, 8.0 TLSv1.2/TLSv1.3 (TLSv1/1.1 removed in 8.0.28); MariaDB 10.11 TLSv1.2/1.3 by
 * default; MySQL error 3159 ER_SECURE_TRANSPORT_REQUIRED (MariaDB 10.5.2+ uses the same text for
 * require_secure_transport).
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "ctl/internal.h"

static const char *const all_cas[] = {"dbtls-ca-rsa2048-g1", "dbtls-ca-rsa4096-g1",
                                      "dbtls-ca-ecc384-g1", NULL};
static const char *const tls_10_13[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
static const char *const tls_10_12[] = {"TLSv1", "TLSv1.1", "TLSv1.2", NULL};
static const char *const tls_12_13[] = {"TLSv1.2", "TLSv1.3", NULL};

#define MY_3159                                                                                    \
    "Connections using insecure transport are prohibited while --require_secure_transport=ON."

#define PG(v, def, suffix)                                                                         \
    {                                                                                              \
        "postgres", v, def, all_cas, tls_10_13, "TLSv1.2", "TLSv1.3", DBT_CTL_DEFAULT_CIPHERS,     \
            false, 5432, suffix, NULL, 0                                                           \
    }

static const struct dbt_engine_info engines[] = {
    PG("13", false, "SSL off"),
    PG("14", false, "no encryption"),
    PG("15", false, "no encryption"),
    PG("16", true, "no encryption"),
    PG("17", false, "no encryption"),
    {"mysql", "5.7", false, all_cas, tls_10_12, "TLSv1.2", "TLSv1.2", DBT_CTL_DEFAULT_CIPHERS,
     false, 3306, NULL, MY_3159, 3159},
    {"mysql", "8.0", true, all_cas, tls_12_13, "TLSv1.2", "TLSv1.3", DBT_CTL_DEFAULT_CIPHERS, false,
     3306, NULL, MY_3159, 3159},
    {"mariadb", "10.11", true, all_cas, tls_12_13, "TLSv1.2", "TLSv1.3", DBT_CTL_DEFAULT_CIPHERS,
     false, 3306, NULL, MY_3159, 3159},
};

const struct dbt_engine_info *dbt_ctl_engines(size_t *n)
{
    *n = DBT_ARRAY_LEN(engines);
    return engines;
}

const struct dbt_engine_info *dbt_ctl_engine_find(const char *engine, const char *version)
{
    if (!engine) {
        return NULL;
    }
    for (size_t i = 0; i < DBT_ARRAY_LEN(engines); i++) {
        if (strcmp(engines[i].engine, engine) != 0) {
            continue;
        }
        if (version ? strcmp(engines[i].version, version) == 0 : engines[i].is_default_version) {
            return &engines[i];
        }
    }
    return NULL;
}

static const char *const ssl_mode_names[] = {
    [DBT_SSL_MODE_ALLOW_UNENCRYPTED_AND_ENCRYPTED] = "ALLOW_UNENCRYPTED_AND_ENCRYPTED",
    [DBT_SSL_MODE_ENCRYPTED_ONLY] = "ENCRYPTED_ONLY",
    [DBT_SSL_MODE_TRUSTED_CLIENT_CERTIFICATE_REQUIRED] = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
};

dbt_res dbt_ctl_ssl_mode_parse(const char *s, enum dbt_ssl_mode *out)
{
    for (size_t i = 0; s && i < DBT_ARRAY_LEN(ssl_mode_names); i++) {
        if (strcasecmp(s, ssl_mode_names[i]) == 0) {
            *out = (enum dbt_ssl_mode)i;
            return DBT_OK;
        }
    }
    return dbt_fail(DBT_E_INVALID,
                    "unknown ssl mode \"%s\"; use ALLOW_UNENCRYPTED_AND_ENCRYPTED, "
                    "ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED",
                    s ? s : "");
}

const char *dbt_ctl_ssl_mode_name(enum dbt_ssl_mode m)
{
    if ((size_t)m < DBT_ARRAY_LEN(ssl_mode_names)) {
        return ssl_mode_names[m];
    }
    return "?";
}
