/*
 * ops.c - this build's table of the TLS implementation (tls_ops.h): dbt_tls_openssl_ops when
 * built with OpenSSL 3 into the static library, dbt_tls_module_ops when built with BoringSSL
 * into the module that dbt_tls_use_library loads.
 */
#include "tls/tls_int.h"
#include "tls/tls_ops.h"

#ifdef OPENSSL_IS_BORINGSSL
#define OPS_SYMBOL dbt_tls_module_ops
#define OPS_NAME "boringssl"
#define OPS_ERRMSG dbt_errmsg /* the module's own copy of base/err */
#else
#define OPS_SYMBOL dbt_tls_openssl_ops
#define OPS_NAME "openssl"
#define OPS_ERRMSG NULL /* same process namespace: the caller's message already */
#endif

__attribute__((visibility("default"))) const struct dbt_tls_ops OPS_SYMBOL = {
    .abi = DBT_TLS_OPS_ABI,
    .name = OPS_NAME,
    .version = dbt_tlsi_version,
    .errmsg = OPS_ERRMSG,
    .server_ctx_new = dbt_tlsi_server_ctx_new,
    .client_ctx_new = dbt_tlsi_client_ctx_new,
    .ctx_ref = dbt_tlsi_ctx_ref,
    .ctx_cert_sha1 = dbt_tlsi_ctx_cert_sha1,
    .ctx_unref = dbt_tlsi_ctx_unref,
    .conn_new_server = dbt_tlsi_conn_new_server,
    .conn_new_server_prefixed = dbt_tlsi_conn_new_server_prefixed,
    .conn_new_client = dbt_tlsi_conn_new_client,
    .conn_free = dbt_tlsi_conn_free,
    .conn_set_sni = dbt_tlsi_conn_set_sni,
    .handshake = dbt_tlsi_handshake,
    .read = dbt_tlsi_read,
    .write = dbt_tlsi_write,
    .pending = dbt_tlsi_pending,
    .shutdown = dbt_tlsi_shutdown,
    .get_info = dbt_tlsi_get_info,
    .peer_subject = dbt_tlsi_peer_subject,
    .peer_dn = dbt_tlsi_peer_dn,
    .same_server_cert = dbt_tlsi_same_server_cert,
};
