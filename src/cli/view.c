/*
 * view.c - control-library results as JSON objects with the documented field names (view.h).
 */
#include "cli/view.h"

#include "cli/out.h"

static json_t *str_array(const char *const *items, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++) {
        json_array_append_new(a, json_string(items[i]));
    }
    return a;
}

static json_t *null_terminated_array(const char *const *items)
{
    size_t n = 0;

    while (items && items[n]) {
        n++;
    }
    return str_array(items, n);
}

json_t *dbt_cli_view_cert(const struct dbt_ctl_cert *c)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    if (c->slot) {
        dbt_cli_jset(o, "slot", json_string(c->slot));
    }
    if (c->name) {
        dbt_cli_jset(o, "name", json_string(c->name));
    }
    dbt_cli_jset(o, "instance", dbt_cli_jstr(c->instance));
    dbt_cli_jset(o, "certSerialNumber", dbt_cli_jstr(c->cert_serial_number));
    dbt_cli_jset(o, "commonName", dbt_cli_jstr(c->common_name));
    dbt_cli_jset(o, "sha1Fingerprint", dbt_cli_jstr(c->sha1_fingerprint));
    dbt_cli_jset(o, "createTime", dbt_cli_jtime(c->create_time));
    dbt_cli_jset(o, "notBefore", dbt_cli_jtime(c->not_before));
    dbt_cli_jset(o, "expirationTime", dbt_cli_jtime(c->expiration_time));
    dbt_cli_jset(o, "subject", dbt_cli_jstr(c->subject));
    dbt_cli_jset(o, "issuer", dbt_cli_jstr(c->issuer));
    dbt_cli_jset(o, "keyAlgorithm", dbt_cli_jstr(c->key_algorithm));
    dbt_cli_jset(o, "cert", dbt_cli_jstr(c->cert));
    return o;
}

json_t *dbt_cli_view_cert_list(const struct dbt_ctl_cert_list *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < l->n; i++) {
        json_t *o = dbt_cli_view_cert(&l->items[i]);
        if (!o) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, o);
    }
    return a;
}

json_t *dbt_cli_view_ca(const struct dbt_ctl_ca_info *ca)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_cli_jset(o, "certificateIdentifier", dbt_cli_jstr(ca->id));
    dbt_cli_jset(o, "certificateType", dbt_cli_jstr(ca->type));
    dbt_cli_jset(o, "keyAlgorithm", dbt_cli_jstr(ca->key_algorithm));
    dbt_cli_jset(o, "signatureAlgorithm", dbt_cli_jstr(ca->signature_algorithm));
    dbt_cli_jset(o, "thumbprint", dbt_cli_jstr(ca->sha1_fingerprint));
    dbt_cli_jset(o, "validFrom", dbt_cli_jtime(ca->valid_from));
    dbt_cli_jset(o, "validTill", dbt_cli_jtime(ca->valid_till));
    dbt_cli_jset(o, "defaultForNewInstances", json_boolean(ca->is_default));
    dbt_cli_jset(o, "regions", str_array((const char *const *)ca->regions, ca->n_regions));
    dbt_cli_jset(o, "cert", dbt_cli_jstr(ca->cert));
    return o;
}

json_t *dbt_cli_view_engine(const struct dbt_engine_info *e)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_cli_jset(o, "engine", dbt_cli_jstr(e->engine));
    dbt_cli_jset(o, "engineVersion", dbt_cli_jstr(e->version));
    dbt_cli_jset(o, "defaultVersion", json_boolean(e->is_default_version));
    dbt_cli_jset(o, "supportedCaCertificateIdentifiers", null_terminated_array(e->ca_ids));
    dbt_cli_jset(o, "supportedTlsVersions", null_terminated_array(e->tls_versions));
    dbt_cli_jset(o, "defaultTlsMinVersion", dbt_cli_jstr(e->default_tls_min));
    dbt_cli_jset(o, "defaultTlsMaxVersion", dbt_cli_jstr(e->default_tls_max));
    dbt_cli_jset(o, "defaultCiphers", dbt_cli_jstr(e->default_ciphers));
    dbt_cli_jset(o, "supportsCertificateRotationWithoutRestart",
                 json_boolean(!e->rotation_requires_restart));
    dbt_cli_jset(o, "defaultPort", json_integer(e->default_port));
    dbt_cli_jset(o, "hbaRejectSuffix", dbt_cli_jstr(e->hba_reject_suffix));
    dbt_cli_jset(o, "insecureTransportErrno",
                 e->insecure_transport_errno ? json_integer(e->insecure_transport_errno)
                                             : json_null());
    dbt_cli_jset(o, "insecureTransportError", dbt_cli_jstr(e->insecure_transport_error));
    return o;
}

json_t *dbt_cli_view_instance(const struct dbt_ctl_instance *in)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_cli_jset(o, "name", dbt_cli_jstr(in->name));
    dbt_cli_jset(o, "engine", dbt_cli_jstr(in->engine));
    dbt_cli_jset(o, "engineVersion", dbt_cli_jstr(in->engine_version));
    dbt_cli_jset(o, "region", dbt_cli_jstr(in->region));
    dbt_cli_jset(o, "listen", dbt_cli_jstr(in->listen));
    dbt_cli_jset(o, "backend", dbt_cli_jstr(in->backend));
    dbt_cli_jset(o, "backendTlsCa", dbt_cli_jstr(in->backend_tls_ca));
    dbt_cli_jset(o, "endpoints", str_array((const char *const *)in->endpoints, in->n_endpoints));
    dbt_cli_jset(o, "caMode", dbt_cli_jstr(in->ca_mode));
    dbt_cli_jset(o, "caId", dbt_cli_jstr(in->ca_id));
    dbt_cli_jset(o, "sslMode", dbt_cli_jstr(dbt_ctl_ssl_mode_name(in->ssl_mode)));
    dbt_cli_jset(o, "tlsMinVersion", dbt_cli_jstr(in->tls_min));
    dbt_cli_jset(o, "tlsMaxVersion", dbt_cli_jstr(in->tls_max));
    dbt_cli_jset(o, "ciphers", dbt_cli_jstr(in->ciphers));
    dbt_cli_jset(o, "ciphersuites", dbt_cli_jstr(in->ciphersuites));
    dbt_cli_jset(o, "groups", dbt_cli_jstr(in->groups));
    dbt_cli_jset(o, "hbaRules", dbt_cli_jstr(in->hba_text));
    dbt_cli_jset(o, "identMap", dbt_cli_jstr(in->ident_text));
    dbt_cli_jset(o, "userRequire", dbt_cli_jstr(in->user_require_text));
    dbt_cli_jset(o, "maxClientCerts", json_integer(in->max_client_certs));
    dbt_cli_jset(o, "clientCertCount", json_integer(in->n_client_certs));
    dbt_cli_jset(o, "createTime", dbt_cli_jtime(in->create_time));
    dbt_cli_jset(o, "updateTime", dbt_cli_jtime(in->update_time));
    if (in->server_ca_cert.cert) {
        dbt_cli_jset(o, "serverCaCert", dbt_cli_view_cert(&in->server_ca_cert));
    }
    if (in->server_cert.cert) {
        dbt_cli_jset(o, "serverCert", dbt_cli_view_cert(&in->server_cert));
    }
    return o;
}

json_t *dbt_cli_view_event(const struct dbt_ctl_event *ev)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_cli_jset(o, "id", json_integer(ev->id));
    dbt_cli_jset(o, "time", dbt_cli_jtime(ev->time));
    dbt_cli_jset(o, "actor", dbt_cli_jstr(ev->actor));
    dbt_cli_jset(o, "action", dbt_cli_jstr(ev->action));
    dbt_cli_jset(o, "object", dbt_cli_jstr(ev->object));
    dbt_cli_jset(o, "detail", dbt_cli_jstr(ev->detail));
    return o;
}
