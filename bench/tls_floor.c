/*
 * tls_floor.c - the floor under "daemon CPU per TLS handshake" on this machine: what any
 * OpenSSL-based server pays per new TLS connection before doing anything of its own.
 *
 *   handshake  server-side CPU of one full TLS 1.3 handshake in memory (no sockets): an ECDSA
 *              P-256 leaf under a P-384 intermediate (the chain pg_bench.py uses), X25519, no
 *              session tickets, a CertificateRequest naming the client CA, buffers released —
 *              dbtlsd's settings. The client's share is not counted (CLOCK_THREAD_CPUTIME_ID
 *              around the server's calls only).
 *   tcp        server-thread CPU (user + system, RUSAGE_THREAD) per loopback TCP connection
 *              that is accepted, reads 1 byte, writes 1 byte and is closed: the kernel's part.
 *
 * Their sum is what a front cannot go below per handshake with this TLS library and kernel;
 * bench/pg_bench.py's "CPU ms / TLS handshake" row compares dbtlsd and PgBouncer with it.
 *
 * Built twice: tls_floor with OpenSSL 3, tls_floor_boringssl with BoringSSL (the library of
 * dbtlsd --tls-library boringssl).
 *
 * Usage: tls_floor [N]   (default 2000 handshakes and 2000 connections)
 */
#include "floor_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *server_ctx(void)
{
    struct floor_chain c;
    floor_chain_init(&c);
    SSL_CTX *s = floor_server_ctx(&c);
    /* as an instance with a client CA: ask for a certificate, do not require one */
    X509_STORE_add_cert(SSL_CTX_get_cert_store(s), c.ca);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(c.ca)));
    SSL_CTX_set_client_CA_list(s, names);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, NULL);
    floor_chain_cleanup(&c);
    return s;
}

/* Server CPU seconds for n handshakes driven in memory. */
static double handshakes(int n)
{
    SSL_CTX *s = server_ctx(), *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL) {
        floor_die("client context");
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    double server = 0;
    for (int i = 0; i < n; i++) {
        BIO *sb = NULL, *cb = NULL;
        if (BIO_new_bio_pair(&sb, 0, &cb, 0) != 1) {
            floor_die("BIO_new_bio_pair");
        }
        SSL *cl = SSL_new(c);
        double t0 = floor_thread_cpu_s();
        SSL *sv = SSL_new(s);
        server += floor_thread_cpu_s() - t0;
        if (sv == NULL || cl == NULL) {
            floor_die("SSL_new");
        }
        SSL_set_bio(sv, sb, sb);
        SSL_set_bio(cl, cb, cb);
        SSL_set_accept_state(sv);
        SSL_set_connect_state(cl);
        for (int done = 0; !done;) {
            int rc = SSL_do_handshake(cl);
            t0 = floor_thread_cpu_s();
            int rs = SSL_do_handshake(sv);
            server += floor_thread_cpu_s() - t0;
            if ((rc <= 0 && !floor_want_io(cl, rc)) || (rs <= 0 && !floor_want_io(sv, rs))) {
                floor_die("handshake");
            }
            done = rc == 1 && rs == 1;
        }
        t0 = floor_thread_cpu_s();
        SSL_free(sv);
        server += floor_thread_cpu_s() - t0;
        SSL_free(cl);
    }
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    return server;
}

struct tcp_run {
    struct sockaddr_in addr;
    int n;
};

static void *tcp_client(void *arg)
{
    struct tcp_run *r = arg;
    for (int i = 0; i < r->n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        char b = 'x';
        if (fd < 0 || connect(fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) != 0 ||
            write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) {
            floor_die("tcp client");
        }
        close(fd);
    }
    return NULL;
}

static double rusage_thread_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Server-thread CPU seconds for n accepted loopback TCP connections. */
static double tcp_connections(int n)
{
    struct tcp_run r = {.n = n};
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof(r.addr);
    r.addr.sin_family = AF_INET;
    r.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&r.addr, sizeof(r.addr)) != 0 ||
        listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&r.addr, &len) != 0) {
        floor_die("tcp listener");
    }
    pthread_t t;
    if (pthread_create(&t, NULL, tcp_client, &r) != 0) {
        floor_die("pthread_create");
    }
    double t0 = rusage_thread_s();
    for (int i = 0; i < n; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        char b;
        if (fd < 0 || read(fd, &b, 1) != 1 || write(fd, &b, 1) != 1) {
            floor_die("tcp server");
        }
        close(fd);
    }
    double used = rusage_thread_s() - t0;
    pthread_join(t, NULL);
    close(lfd);
    return used;
}

int main(int argc, char **argv)
{
    floor_prog = "tls_floor";
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    if (n <= 0) {
        fprintf(stderr, "usage: tls_floor [N]   (N > 0 handshakes and connections)\n");
        return 2;
    }
    (void)handshakes(n / 10 + 1); /* warm up */
    double hs = handshakes(n) * 1e3 / n;
    double tcp = tcp_connections(n) * 1e3 / n;
    printf("%s, %d runs each\n", OpenSSL_version(OPENSSL_VERSION), n);
    printf("handshake  %.3f ms server CPU per TLS 1.3 handshake in memory (ECDSA P-256, X25519)\n",
           hs);
    printf("tcp        %.3f ms server CPU per loopback TCP connection (accept, 1 byte each way, "
           "close)\n",
           tcp);
    printf("floor      %.3f ms per new TLS connection\n", hs + tcp);
    return 0;
}
