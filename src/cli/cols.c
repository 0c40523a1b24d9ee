/*
 * cols.c - the table columns of every listing, one place for the local handlers and the remote
 * mode (remote.c), so `dbtls --server` prints exactly what the local command prints.
 */
#include "cli/out.h"

const struct dbt_cli_col dbt_cli_cols_instance[] = {
    {"NAME", "name"},
    {"ENGINE", "engine"},
    {"VERSION", "engineVersion"},
    {"REGION", "region"},
    {"LISTEN", "listen"},
    {"BACKEND", "backend"},
    {"CA_MODE", "caMode"},
    {"CA", "caId"},
    {"SSL_MODE", "sslMode"},
    {"CLIENT_CERTS", "clientCertCount"},
    {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_cert[] = {
    {"SLOT", "slot"},
    {"SERIAL", "certSerialNumber"},
    {"COMMON_NAME", "commonName"},
    {"SHA1_FINGERPRINT", "sha1Fingerprint"},
    {"CREATED", "createTime"},
    {"EXPIRATION", "expirationTime"},
    {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_client[] = {
    {"NAME", "name"},
    {"SERIAL", "certSerialNumber"},
    {"SHA1_FINGERPRINT", "sha1Fingerprint"},
    {"CREATED", "createTime"},
    {"EXPIRATION", "expirationTime"},
    {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_ca[] = {
    {"CERTIFICATE_IDENTIFIER", "certificateIdentifier"},
    {"KEY_ALGORITHM", "keyAlgorithm"},
    {"SIGNATURE_ALGORITHM", "signatureAlgorithm"},
    {"THUMBPRINT", "thumbprint"},
    {"VALID_FROM", "validFrom"},
    {"VALID_TILL", "validTill"},
    {"DEFAULT", "defaultForNewInstances"},
    {"REGIONS", "regions"},
    {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_engine[] = {
    {"ENGINE", "engine"},
    {"VERSION", "engineVersion"},
    {"DEFAULT", "defaultVersion"},
    {"TLS_VERSIONS", "supportedTlsVersions"},
    {"DEFAULT_CIPHERS", "defaultCiphers"},
    {"CA_IDS", "supportedCaCertificateIdentifiers"},
    {"ROTATION_WITHOUT_RESTART", "supportsCertificateRotationWithoutRestart"},
    {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_event[] = {
    {"TIME", "time"},     {"ACTOR", "actor"},   {"ACTION", "action"},
    {"OBJECT", "object"}, {"DETAIL", "detail"}, {NULL, NULL},
};

const struct dbt_cli_col dbt_cli_cols_check[] = {
    {"CHECK", "check"},
    {"RESULT", "result"},
    {"DETAIL", "detail"},
    {NULL, NULL},
};
