/*
 * sni.c - several instances behind one listen address: the client's TLS server name (SNI, sent
 * by libpq since PostgreSQL 14 and always with direct TLS) picks the SSL_CTX of the instance
 * whose endpoint it names.
 *
 * The choice is made in OpenSSL's ClientHello callback, before the protocol version, cipher and
 * key share are negotiated (the servername callback comes after the TLS 1.3 cipher choice), so
 * the chosen instance's own versions and cipher lists apply exactly as if it listened alone.
 * SSL_set_SSL_CTX swaps the certificate, key and trust store (with its CRL flags), which OpenSSL
 * reads from the context; the verify mode, versions and cipher lists were copied into the SSL at
 * SSL_new and are set again here. Groups stay the first instance's (ctl requires them equal).
 * BoringSSL (and AWS-LC) offer the same point as SSL_CTX_set_select_certificate_cb, whose
 * handshake failure sends internal_error too; its TLS 1.3 suites are fixed, so only the TLS 1.2
 * list is set again there.
 */
#include <openssl/err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_int.h"

dbt_res dbt_tlsi_conn_set_sni(struct dbt_tls_conn *c, dbt_tls_sni_fn fn, void *arg)
{
    c->sni_fn = fn;
    c->sni_arg = arg;
    return DBT_OK;
}

bool dbt_tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t outlen)
{
    /* ServerNameList: uint16 length, then { uint8 name_type, uint16 length, bytes } (RFC 6066) */
    if (len < 2 || (size_t)((p[0] << 8) | p[1]) != len - 2) {
        return false;
    }
    size_t i = 2;
    while (i + 3 <= len) {
        unsigned type = p[i];
        size_t n = (size_t)((p[i + 1] << 8) | p[i + 2]);
        i += 3;
        if (n > len - i) {
            return false;
        }
        if (type == TLSEXT_NAMETYPE_host_name) {
            if (n == 0 || n >= outlen || memchr(p + i, '\0', n) != NULL) {
                return false;
            }
            memcpy(out, p + i, n);
            out[n] = '\0';
            return true;
        }
        i += n;
    }
    return false;
}

/* Why the server-name choice failed the handshake, kept for the log. */
static void refuse(struct dbt_tls_conn *c, const char *why)
{
    ERR_clear_error();
    free(c->sni_refusal);
    c->sni_refusal = dbt_tls_strdup(why);
}

/* Makes the SSL serve chosen's certificate with chosen's settings (see the top); false (and the
   reason kept) when it cannot. */
static bool switch_ctx(struct dbt_tls_conn *c, SSL *ssl, const struct dbt_tls_ctx *chosen)
{
    SSL_CTX *ctx = chosen->ctx;
    const struct dbt_tls_ctx *o = c->origin;
    if (SSL_set_SSL_CTX(ssl, ctx) != ctx) {
        refuse(c, "the certificate of the server name could not be set");
        return false;
    }
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
    if (SSL_set_min_proto_version(ssl, (uint16_t)SSL_CTX_get_min_proto_version(ctx)) != 1 ||
        SSL_set_max_proto_version(ssl, (uint16_t)SSL_CTX_get_max_proto_version(ctx)) != 1) {
        refuse(c, "the TLS versions of the server name could not be set");
        return false;
    }
    /* parsed again only when they differ from the lists the SSL was made with */
    if ((o == NULL || strcmp(o->ciphers, chosen->ciphers) != 0) &&
        SSL_set_cipher_list(ssl, chosen->ciphers) != 1) {
        refuse(c, "the cipher list of the server name could not be set");
        return false;
    }
#ifndef OPENSSL_IS_BORINGSSL
    if ((o == NULL || strcmp(o->ciphersuites, chosen->ciphersuites) != 0) &&
        SSL_set_ciphersuites(ssl, chosen->ciphersuites) != 1) {
        refuse(c, "the TLS 1.3 cipher suites of the server name could not be set");
        return false;
    }
#endif
    return true;
}

/* The ClientHello's server_name extension (body ext, extlen; NULL if absent) chooses the
   context of ssl. False when the handshake must fail. */
static bool choose(SSL *ssl, const unsigned char *ext, size_t extlen)
{
    struct dbt_tls_conn *c = SSL_get_app_data(ssl);
    char name[256];
    if (c == NULL || c->sni_fn == NULL || ext == NULL ||
        !dbt_tls_sni_parse(ext, extlen, name, sizeof(name))) {
        return true; /* no (usable) name: the connection's own context */
    }
    struct dbt_tls_ctx *chosen = c->sni_fn(c->sni_arg, name);
    if (chosen == NULL || chosen->ctx == SSL_get_SSL_CTX(ssl)) {
        return true;
    }
    return switch_ctx(c, ssl, chosen);
}

#ifdef OPENSSL_IS_BORINGSSL
static enum ssl_select_cert_result_t select_cb(const SSL_CLIENT_HELLO *hello)
{
    const uint8_t *ext = NULL;
    size_t extlen = 0;
    if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_server_name, &ext, &extlen) != 1) {
        ext = NULL;
    }
    return choose(hello->ssl, ext, extlen) ? ssl_select_cert_success : ssl_select_cert_error;
}

void dbt_tls_install_sni(SSL_CTX *ctx)
{
    SSL_CTX_set_select_certificate_cb(ctx, select_cb);
}
#else
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    const unsigned char *ext = NULL;
    size_t extlen = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &extlen) != 1) {
        ext = NULL;
    }
    if (choose(ssl, ext, extlen)) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
}

void dbt_tls_install_sni(SSL_CTX *ctx)
{
    SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
}
#endif
