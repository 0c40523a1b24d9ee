/*
 * names.c - what may go into a certificate as a name: server endpoints (DNS names per RFC 1123,
 * optionally a leading wildcard label, or IPv4/IPv6 addresses) and client certificate names
 * (Cloud SQL's rule, [A-Za-z0-9._ -], 1..64 characters, which is also the CN's size limit).
 */
#include "pki/internal.h"

#include <arpa/inet.h>
#include <string.h>

bool dbt_pki_valid_ip(const char *s)
{
    unsigned char buf[16];
    if (s == NULL) {
        return false;
    }
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * Returns NULL when s is a valid DNS name, else why not. RFC 1123 section 2.1: labels of letters,
 * digits and hyphens, starting and ending with a letter or digit (a leading digit allowed), at
 * most 63 octets; the whole name at most 253 characters in text form (RFC 1035 section 2.3.4).
 */
static const char *dns_problem(const char *s)
{
    size_t len = strlen(s);
    if (len == 0) {
        return "empty name";
    }
    if (len > 253) {
        return "longer than 253 characters";
    }
    const char *p = s;
    bool wildcard = false;
    if (p[0] == '*') {
        if (p[1] != '.') {
            return "a wildcard must be a whole first label (\"*.\")";
        }
        wildcard = true;
        p += 2;
    }
    size_t labels = 0;
    bool last_numeric = true;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) {
            return dot && dot[1] == '\0' ? "trailing dot" : "empty label";
        }
        if (n > 63) {
            return "label longer than 63 characters";
        }
        if (p[0] == '-' || p[n - 1] == '-') {
            return "label starts or ends with '-'";
        }
        last_numeric = true;
        for (size_t i = 0; i < n; i++) {
            if (!is_alnum(p[i]) && p[i] != '-') {
                return p[i] == '*' ? "'*' is only allowed as the whole first label"
                                   : "character not allowed (only letters, digits, '-' and '.')";
            }
            if (!(p[i] >= '0' && p[i] <= '9')) {
                last_numeric = false;
            }
        }
        labels++;
        if (dot == NULL) {
            break;
        }
        p = dot + 1;
    }
    if (last_numeric) {
        return "the last label is numeric (not a valid IP address either)";
    }
    if (wildcard && labels < 2) {
        return "a wildcard needs at least two labels after \"*.\"";
    }
    return NULL;
}

bool dbt_pki_valid_dns_name(const char *s)
{
    return s != NULL && dns_problem(s) == NULL;
}

enum dbt_pki_endpoint_kind dbt_pki_endpoint_kind(const char *s)
{
    unsigned char buf[16];
    if (s == NULL) {
        return DBT_PKI_ENDPOINT_INVALID;
    }
    if (inet_pton(AF_INET, s, buf) == 1) {
        return DBT_PKI_ENDPOINT_IPV4;
    }
    if (inet_pton(AF_INET6, s, buf) == 1) {
        return DBT_PKI_ENDPOINT_IPV6;
    }
    return dns_problem(s) == NULL ? DBT_PKI_ENDPOINT_DNS : DBT_PKI_ENDPOINT_INVALID;
}

dbt_res dbt_pki_check_endpoint(const char *s)
{
    if (s == NULL) {
        return dbt_fail(DBT_E_INVALID, "endpoint is missing");
    }
    if (dbt_pki_endpoint_kind(s) != DBT_PKI_ENDPOINT_INVALID) {
        return DBT_OK;
    }
    const char *why =
        strchr(s, ':') != NULL ? "malformed IPv6 address (no brackets, no zone)" : dns_problem(s);
    return dbt_fail(DBT_E_INVALID, "endpoint \"%.300s\" is not a valid DNS name or IP address: %s",
                    s, why ? why : "invalid");
}

static const char *client_name_problem(const char *s)
{
    size_t len = strlen(s);
    if (len == 0) {
        return "it is empty";
    }
    if (len > 64) {
        return "it is longer than 64 characters";
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!is_alnum(c) && c != '.' && c != '_' && c != ' ' && c != '-') {
            return "only letters, digits, '.', '_', '-' and spaces are allowed";
        }
    }
    return NULL;
}

bool dbt_pki_valid_client_name(const char *s)
{
    return s != NULL && client_name_problem(s) == NULL;
}

dbt_res dbt_pki_check_client_name(const char *s)
{
    if (s == NULL) {
        return dbt_fail(DBT_E_INVALID, "client certificate name is missing");
    }
    const char *why = client_name_problem(s);
    if (why == NULL) {
        return DBT_OK;
    }
    return dbt_fail(DBT_E_INVALID, "client certificate name \"%.100s\" is invalid: %s", s, why);
}
