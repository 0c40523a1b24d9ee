/*
 * issue_time.c - how long issuing an ECDSA P-256 server certificate takes under each shared CA
 * (dbtls-ca-rsa2048-g1: RSA-2048/SHA-256, dbtls-ca-rsa4096-g1: RSA-4096/SHA-384,
 * dbtls-ca-ecc384-g1: P-384/SHA-384), signed by a regional intermediate as `dbtls` does it.
 * Prints the median and 90th percentile of N runs for "key + certificate" (what creating a
 * server certificate costs) and "certificate only" (the signature and encoding).
 *
 * Usage: issue_time [N]   (default 200)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "pki/pki.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static int fail(const char *what, dbt_res r)
{
    fprintf(stderr, "issue_time: %s: %s: %s\n", what, dbt_err_name(r.code), dbt_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *id;
        enum dbt_pki_key_type type;
        enum dbt_pki_digest digest;
    } cas[] = {
        {"dbtls-ca-rsa2048-g1", DBT_PKI_KEY_RSA2048, DBT_PKI_SHA256},
        {"dbtls-ca-rsa4096-g1", DBT_PKI_KEY_RSA4096, DBT_PKI_SHA384},
        {"dbtls-ca-ecc384-g1", DBT_PKI_KEY_EC384, DBT_PKI_SHA384},
    };
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "usage: issue_time [N]   (1..1000000 runs, default 200)\n");
        return 2;
    }
    double *full = calloc((size_t)n, sizeof(double));
    double *sign = calloc((size_t)n, sizeof(double));
    if (full == NULL || sign == NULL) {
        return 1;
    }
    const char *san[] = {"db1.example.com", "10.0.0.1"};
    printf("ec256 server certificate issue time, N=%ld (ms)\n", n);
    printf("%-22s %-22s %14s %14s %14s %14s\n", "CA", "issuer", "key+cert p50", "key+cert p90",
           "cert p50", "cert p90");
    for (size_t c = 0; c < sizeof(cas) / sizeof(cas[0]); c++) {
        struct dbt_pki_key *rk = NULL, *ik = NULL, *sk = NULL;
        struct dbt_pki_cert *root = NULL, *inter = NULL, *cert = NULL;
        dbt_res r;
        if (!dbt_ok(r = dbt_pki_key_generate(cas[c].type, &rk)) ||
            !dbt_ok(r = dbt_pki_key_generate(cas[c].type, &ik))) {
            return fail("generate CA key", r);
        }
        struct dbt_pki_cert_spec rs = {.profile = DBT_PKI_PROFILE_CA,
                                       .cn = cas[c].id,
                                       .o = "dbtls",
                                       .validity_secs = 40LL * 365 * 86400,
                                       .pathlen = 1,
                                       .digest = cas[c].digest,
                                       .key = rk};
        if (!dbt_ok(r = dbt_pki_cert_issue(&rs, &root))) {
            return fail("issue root", r);
        }
        struct dbt_pki_cert_spec is = rs;
        is.cn = "bench-region intermediate";
        is.validity_secs = 10LL * 365 * 86400;
        is.pathlen = 0;
        is.key = ik;
        is.issuer = root;
        is.issuer_key = rk;
        if (!dbt_ok(r = dbt_pki_cert_issue(&is, &inter))) {
            return fail("issue intermediate", r);
        }
        struct dbt_pki_cert_spec ss = {.profile = DBT_PKI_PROFILE_SERVER,
                                       .validity_secs = 365 * 86400,
                                       .san = san,
                                       .n_san = 2,
                                       .digest = cas[c].digest,
                                       .issuer = inter,
                                       .issuer_key = ik};
        for (long i = 0; i < n; i++) {
            double t0 = now_ms();
            if (!dbt_ok(r = dbt_pki_key_generate(DBT_PKI_KEY_EC256, &sk))) {
                return fail("generate server key", r);
            }
            double t1 = now_ms();
            ss.key = sk;
            if (!dbt_ok(r = dbt_pki_cert_issue(&ss, &cert))) {
                return fail("issue server certificate", r);
            }
            double t2 = now_ms();
            full[i] = t2 - t0;
            sign[i] = t2 - t1;
            dbt_pki_cert_free(cert);
            dbt_pki_key_free(sk);
        }
        char issuer[40];
        snprintf(issuer, sizeof(issuer), "%s/%s", dbt_pki_key_type_label(cas[c].type),
                 dbt_pki_digest_name(cas[c].digest));
        printf("%-22s %-22s %14.3f %14.3f %14.3f %14.3f\n", cas[c].id, issuer,
               pct(full, (size_t)n, 0.5), pct(full, (size_t)n, 0.9), pct(sign, (size_t)n, 0.5),
               pct(sign, (size_t)n, 0.9));
        dbt_pki_cert_free(root);
        dbt_pki_cert_free(inter);
        dbt_pki_key_free(rk);
        dbt_pki_key_free(ik);
    }
    free(full);
    free(sign);
    return 0;
}
