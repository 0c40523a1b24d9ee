/*
 * view.c - control-library results as JSON objects with the documented field names (view.h).
 * Shared by the CLI (--format json) and the admin API, so both always say the same thing.
 */
#include "admin/view.h"

#include "base/clock.h"

json_t *dbt_view_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *dbt_view_time(int64_t unix_secs)
{
    char buf[40];

    if (unix_secs == 0) {
        return json_null();
    }
    dbt_time_rfc3339(unix_secs, buf, sizeof(buf));
    return json_string(buf);
}

void dbt_view_set(json_t *obj, const char *key, json_t *value)
{
    if (value) {
        json_object_set_new(obj, key, value);
    }
}

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

json_t *dbt_view_cert(const struct dbt_ctl_cert *c)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    if (c->slot) {
        dbt_view_set(o, "slot", json_string(c->slot));
    }
    if (c->name) {
        dbt_view_set(o, "name", json_string(c->name));
    }
    dbt_view_set(o, "instance", dbt_view_str(c->instance));
    dbt_view_set(o, "certSerialNumber", dbt_view_str(c->cert_serial_number));
    dbt_view_set(o, "commonName", dbt_view_str(c->common_name));
    dbt_view_set(o, "sha1Fingerprint", dbt_view_str(c->sha1_fingerprint));
    dbt_view_set(o, "createTime", dbt_view_time(c->create_time));
    dbt_view_set(o, "notBefore", dbt_view_time(c->not_before));
    dbt_view_set(o, "expirationTime", dbt_view_time(c->expiration_time));
    dbt_view_set(o, "subject", dbt_view_str(c->subject));
    dbt_view_set(o, "issuer", dbt_view_str(c->issuer));
    dbt_view_set(o, "keyAlgorithm", dbt_view_str(c->key_algorithm));
    dbt_view_set(o, "cert", dbt_view_str(c->cert));
    return o;
}

json_t *dbt_view_cert_list(const struct dbt_ctl_cert_list *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < l->n; i++) {
        json_t *o = dbt_view_cert(&l->items[i]);
        if (!o) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, o);
    }
    return a;
}

json_t *dbt_view_ca(const struct dbt_ctl_ca_info *ca)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_view_set(o, "certificateIdentifier", dbt_view_str(ca->id));
    dbt_view_set(o, "certificateType", dbt_view_str(ca->type));
    dbt_view_set(o, "keyAlgorithm", dbt_view_str(ca->key_algorithm));
    dbt_view_set(o, "signatureAlgorithm", dbt_view_str(ca->signature_algorithm));
    dbt_view_set(o, "thumbprint", dbt_view_str(ca->sha1_fingerprint));
    dbt_view_set(o, "validFrom", dbt_view_time(ca->valid_from));
    dbt_view_set(o, "validTill", dbt_view_time(ca->valid_till));
    dbt_view_set(o, "defaultForNewInstances", json_boolean(ca->is_default));
    dbt_view_set(o, "regions", str_array((const char *const *)ca->regions, ca->n_regions));
    dbt_view_set(o, "cert", dbt_view_str(ca->cert));
    return o;
}

json_t *dbt_view_engine(const struct dbt_engine_info *e)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_view_set(o, "engine", dbt_view_str(e->engine));
    dbt_view_set(o, "engineVersion", dbt_view_str(e->version));
    dbt_view_set(o, "defaultVersion", json_boolean(e->is_default_version));
    dbt_view_set(o, "supportedCaCertificateIdentifiers", null_terminated_array(e->ca_ids));
    dbt_view_set(o, "supportedTlsVersions", null_terminated_array(e->tls_versions));
    dbt_view_set(o, "defaultTlsMinVersion", dbt_view_str(e->default_tls_min));
    dbt_view_set(o, "defaultTlsMaxVersion", dbt_view_str(e->default_tls_max));
    dbt_view_set(o, "defaultCiphers", dbt_view_str(e->default_ciphers));
    dbt_view_set(o, "supportsCertificateRotationWithoutRestart",
                 json_boolean(!e->rotation_requires_restart));
    dbt_view_set(o, "defaultPort", json_integer(e->default_port));
    dbt_view_set(o, "hbaRejectSuffix", dbt_view_str(e->hba_reject_suffix));
    dbt_view_set(o, "insecureTransportErrno",
                 e->insecure_transport_errno ? json_integer(e->insecure_transport_errno)
                                             : json_null());
    dbt_view_set(o, "insecureTransportError", dbt_view_str(e->insecure_transport_error));
    return o;
}

json_t *dbt_view_instance(const struct dbt_ctl_instance *in)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_view_set(o, "name", dbt_view_str(in->name));
    dbt_view_set(o, "engine", dbt_view_str(in->engine));
    dbt_view_set(o, "engineVersion", dbt_view_str(in->engine_version));
    dbt_view_set(o, "region", dbt_view_str(in->region));
    dbt_view_set(o, "listen", dbt_view_str(in->listen));
    dbt_view_set(o, "backend", dbt_view_str(in->backend));
    dbt_view_set(o, "backendTlsCa", dbt_view_str(in->backend_tls_ca));
    dbt_view_set(o, "backendTlsCert", dbt_view_str(in->backend_tls_cert));
    dbt_view_set(o, "backendTlsKey", dbt_view_str(in->backend_tls_key));
    dbt_view_set(o, "clientInfo", json_boolean(in->client_info));
    dbt_view_set(o, "endpoints", str_array((const char *const *)in->endpoints, in->n_endpoints));
    dbt_view_set(o, "caMode", dbt_view_str(in->ca_mode));
    dbt_view_set(o, "caId", dbt_view_str(in->ca_id));
    dbt_view_set(o, "sslMode", dbt_view_str(dbt_ctl_ssl_mode_name(in->ssl_mode)));
    dbt_view_set(o, "tlsMinVersion", dbt_view_str(in->tls_min));
    dbt_view_set(o, "tlsMaxVersion", dbt_view_str(in->tls_max));
    dbt_view_set(o, "ciphers", dbt_view_str(in->ciphers));
    dbt_view_set(o, "ciphersuites", dbt_view_str(in->ciphersuites));
    dbt_view_set(o, "groups", dbt_view_str(in->groups));
    dbt_view_set(o, "hbaRules", dbt_view_str(in->hba_text));
    dbt_view_set(o, "identMap", dbt_view_str(in->ident_text));
    dbt_view_set(o, "userRequire", dbt_view_str(in->user_require_text));
    dbt_view_set(o, "maxClientCerts", json_integer(in->max_client_certs));
    dbt_view_set(o, "clientCertCount", json_integer(in->n_client_certs));
    dbt_view_set(o, "createTime", dbt_view_time(in->create_time));
    dbt_view_set(o, "updateTime", dbt_view_time(in->update_time));
    if (in->server_ca_cert.cert) {
        dbt_view_set(o, "serverCaCert", dbt_view_cert(&in->server_ca_cert));
    }
    if (in->server_cert.cert) {
        dbt_view_set(o, "serverCert", dbt_view_cert(&in->server_cert));
    }
    return o;
}

json_t *dbt_view_event(const struct dbt_ctl_event *ev)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_view_set(o, "id", json_integer(ev->id));
    dbt_view_set(o, "time", dbt_view_time(ev->time));
    dbt_view_set(o, "actor", dbt_view_str(ev->actor));
    dbt_view_set(o, "action", dbt_view_str(ev->action));
    dbt_view_set(o, "object", dbt_view_str(ev->object));
    dbt_view_set(o, "detail", dbt_view_str(ev->detail));
    return o;
}

json_t *dbt_view_admin_cert(const struct dbt_ctl_admin_cert_info *c)
{
    json_t *o = json_object();

    if (!o) {
        return NULL;
    }
    dbt_view_set(o, "name", json_string(c->name));
    dbt_view_set(o, "certSerialNumber", json_string(c->serial));
    dbt_view_set(o, "sha1Fingerprint", dbt_view_str(c->sha1_fingerprint));
    dbt_view_set(o, "createTime", dbt_view_time(c->create_time));
    dbt_view_set(o, "expirationTime", dbt_view_time(c->expiration_time));
    dbt_view_set(o, "revoked", json_boolean(c->revoke_time != 0));
    dbt_view_set(o, "revokeTime", dbt_view_time(c->revoke_time));
    return o;
}

json_t *dbt_view_admin_cert_list(const struct dbt_ctl_admin_cert_list *l)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < l->n; i++) {
        json_t *o = dbt_view_admin_cert(&l->items[i]);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
