/*
 * test_base.c - reader, writer and buffer: every read at every truncation point, zero, maximum
 * and maximum+1 values, missing terminators, trailing bytes.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/par.h"
#include "base/rd.h"
#include "base/wr.h"
#include "check.h"

static void test_reader_ints(void)
{
    const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    struct dbt_rd rd = dbt_rd_make(b, sizeof(b));
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    CHECK(dbt_rd_be16(&rd, &v16) && v16 == 0x0102);
    CHECK(dbt_rd_be32(&rd, &v32) && v32 == 0x03040506);
    CHECK(!dbt_rd_be32(&rd, &v32) && rd.off == 6); /* all-or-nothing */
    CHECK(dbt_rd_le16(&rd, &v16) && v16 == 0x0807);
    CHECK(dbt_rd_expect_end(&rd));
    rd = dbt_rd_make(b, sizeof(b));
    CHECK(dbt_rd_le64(&rd, &v64) && v64 == 0x0807060504030201ull);
    rd = dbt_rd_make(b, 3);
    CHECK(dbt_rd_le24(&rd, &v32) && v32 == 0x030201);
    /* truncation at every length */
    for (size_t n = 0; n < 4; n++) {
        rd = dbt_rd_make(b, n);
        CHECK(!dbt_rd_be32(&rd, &v32) && rd.off == 0);
        CHECK(!dbt_rd_le32(&rd, &v32) && rd.off == 0);
    }
}

/* Fixed prefixes, delimited tokens and copies: each all-or-nothing. */
static void test_reader_text(void)
{
    static const char t[] = "PROXY TCP4 a bb\r\n";
    struct dbt_rd rd = dbt_rd_make(t, sizeof(t) - 1);
    char tok[8];
    size_t at = 0;
    CHECK(dbt_rd_starts_like(&rd, "PROXY X", 6) && !dbt_rd_starts_like(&rd, "PROXZ", 5));
    struct dbt_rd few = dbt_rd_make(t, 3);
    CHECK(dbt_rd_starts_like(&few, "PROXY ", 6)); /* what is there agrees: not yet all */
    CHECK(!dbt_rd_expect(&few, "PROXY ", 6) && few.off == 0);
    CHECK(!dbt_rd_expect(&rd, "PROXZ", 5) && rd.off == 0);
    CHECK(dbt_rd_expect(&rd, "PROXY ", 6) && rd.off == 6);
    CHECK(dbt_rd_find(&rd, '\n', 64, &at) && at == 10);
    CHECK(!dbt_rd_find(&rd, '\n', 10, &at)); /* not within max */
    CHECK(dbt_rd_token(&rd, ' ', tok, sizeof(tok)) && strcmp(tok, "TCP4") == 0 && rd.off == 10);
    CHECK(dbt_rd_expect(&rd, " ", 1));
    CHECK(!dbt_rd_token(&rd, '\r', tok, 4) && rd.off == 11); /* "a bb" does not fit in 4 */
    CHECK(dbt_rd_token(&rd, ' ', tok, sizeof(tok)) && strcmp(tok, "a") == 0);
    CHECK(dbt_rd_expect(&rd, " ", 1));
    CHECK(dbt_rd_token(&rd, '\r', tok, sizeof(tok)) && strcmp(tok, "bb") == 0);
    CHECK(dbt_rd_token(&rd, ' ', tok, sizeof(tok)) && strcmp(tok, "\r\n") == 0); /* to the end */
    CHECK(dbt_rd_expect_end(&rd));
    CHECK(dbt_rd_token(&rd, ' ', tok, sizeof(tok)) && tok[0] == '\0'); /* empty at the end */
    static const uint8_t nul[] = {'a', 0, 'b', ' '};
    rd = dbt_rd_make(nul, sizeof(nul));
    CHECK(!dbt_rd_token(&rd, ' ', tok, sizeof(tok)) && rd.off == 0);
    uint8_t four[4];
    CHECK(dbt_rd_copy(&rd, four, 4) && four[3] == ' ' && dbt_rd_expect_end(&rd));
    CHECK(!dbt_rd_copy(&rd, four, 1));
}

static void test_reader_lenenc(void)
{
    const uint8_t one[] = {0xfa};
    const uint8_t two[] = {0xfc, 0xff, 0xff};
    const uint8_t three[] = {0xfd, 0x01, 0x00, 0x01};
    const uint8_t eight[] = {0xfe, 1, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t null[] = {0xfb};
    const uint8_t err[] = {0xff, 0, 0};
    uint64_t v;
    struct dbt_rd rd = dbt_rd_make(one, sizeof(one));
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0xfa);
    rd = dbt_rd_make(two, sizeof(two));
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0xffff);
    rd = dbt_rd_make(three, sizeof(three));
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0x010001);
    rd = dbt_rd_make(eight, sizeof(eight));
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 1 && dbt_rd_expect_end(&rd));
    for (size_t n = 0; n < sizeof(eight); n++) {
        rd = dbt_rd_make(eight, n);
        CHECK(!dbt_rd_lenenc(&rd, &v) && rd.off == 0);
    }
    rd = dbt_rd_make(null, sizeof(null));
    CHECK(!dbt_rd_lenenc(&rd, &v) && rd.off == 0);
    rd = dbt_rd_make(err, sizeof(err));
    CHECK(!dbt_rd_lenenc(&rd, &v) && rd.off == 0);
}

static void test_reader_cstr(void)
{
    const char s[] = "user\0alice\0";
    struct dbt_rd rd = dbt_rd_make(s, sizeof(s) - 1);
    const char *p;
    size_t n;
    CHECK(dbt_rd_cstr(&rd, &p, &n) && n == 4 && memcmp(p, "user", 4) == 0);
    CHECK(dbt_rd_cstr(&rd, &p, &n) && n == 5 && memcmp(p, "alice", 5) == 0);
    CHECK(!dbt_rd_cstr(&rd, &p, &n));
    CHECK(dbt_rd_expect_end(&rd));
    rd = dbt_rd_make("abc", 3); /* missing terminator */
    CHECK(!dbt_rd_cstr(&rd, &p, &n) && rd.off == 0);
    rd = dbt_rd_make("", 0);
    CHECK(!dbt_rd_cstr(&rd, &p, &n));
    struct dbt_rd sub;
    rd = dbt_rd_make(s, sizeof(s) - 1);
    CHECK(dbt_rd_sub(&rd, 5, &sub) && dbt_rd_left(&sub) == 5 && rd.off == 5);
    CHECK(!dbt_rd_sub(&rd, 100, &sub) && rd.off == 5);
    CHECK(!dbt_rd_expect_end(&rd));
}

static void test_writer(void)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 16);
    struct dbt_wr w = dbt_wr_make(&b);
    size_t at = dbt_wr_reserve(&w, 4);
    dbt_wr_cstr(&w, "abc");
    dbt_wr_patch_be32(&w, at, (uint32_t)(dbt_wr_pos(&w) - at));
    CHECK_OK(dbt_wr_finish(&w));
    CHECK(b.len == 8 && b.data[3] == 8 && b.data[7] == 0);
    dbt_wr_zeros(&w, 9); /* 17 > max 16: sticky failure */
    dbt_wr_u8(&w, 1);
    CHECK_ERR(dbt_wr_finish(&w), DBT_E_LIMIT);
    dbt_buf_cleanup(&b);

    dbt_buf_init(&b, 0);
    w = dbt_wr_make(&b);
    dbt_wr_lenenc(&w, 0xfa);
    dbt_wr_lenenc(&w, 0xfb);
    dbt_wr_lenenc(&w, 0x10000);
    dbt_wr_lenenc(&w, 0x1000000);
    CHECK_OK(dbt_wr_finish(&w));
    struct dbt_rd rd = dbt_rd_make(b.data, b.len);
    uint64_t v;
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0xfa);
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0xfb);
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0x10000);
    CHECK(dbt_rd_lenenc(&rd, &v) && v == 0x1000000);
    CHECK(dbt_rd_expect_end(&rd));
    dbt_buf_cleanup(&b);
}

static void test_buf(void)
{
    struct dbt_buf b;
    dbt_buf_init(&b, 8);
    CHECK_OK(dbt_buf_append(&b, "abcdef", 6));
    dbt_buf_consume(&b, 4);
    CHECK(dbt_buf_avail(&b) == 2);
    CHECK_OK(dbt_buf_append(&b, "ghijkl", 6)); /* fits after compaction */
    CHECK(dbt_buf_avail(&b) == 8 && memcmp(dbt_buf_head(&b), "efghijkl", 8) == 0);
    CHECK_ERR(dbt_buf_append(&b, "x", 1), DBT_E_LIMIT);
    dbt_buf_consume(&b, 8);
    CHECK(b.len == 0 && b.off == 0);
    dbt_buf_cleanup(&b);
}

static void test_err(void)
{
    dbt_res r = dbt_fail(DBT_E_NOT_FOUND, "instance \"%s\" not found", "db1");
    CHECK(r.code == DBT_E_NOT_FOUND);
    CHECK(strcmp(dbt_errmsg(), "instance \"db1\" not found") == 0);
    /* the current message may be an argument of the next one */
    r = dbt_fail(DBT_E_IO, "connection to backend %s failed: %s", "x", dbt_errmsg());
    CHECK(strcmp(dbt_errmsg(), "connection to backend x failed: instance \"db1\" not found") == 0);
    r = dbt_fail_ctx(r, "ctx: ");
    CHECK(strncmp(dbt_errmsg(), "ctx: connection to backend x", 28) == 0);
    CHECK(dbt_err_exit_code(r) == 1);
    CHECK(dbt_err_exit_code(dbt_fail(DBT_E_USAGE, "x")) == 2);
    CHECK(strcmp(dbt_err_name(DBT_E_LIMIT), "LIMIT") == 0);
}

/* dbt_par_run: every index once; the lowest failure wins with its own message. */
struct par_case {
    _Atomic int runs[200];
    size_t fail_a, fail_b; /* indices that fail (SIZE_MAX: none) */
};

static dbt_res par_job(void *arg, size_t i)
{
    struct par_case *c = arg;
    atomic_fetch_add(&c->runs[i], 1);
    if (i == c->fail_a || i == c->fail_b) {
        return dbt_fail(i == c->fail_a ? DBT_E_CRYPTO : DBT_E_IO, "job %zu failed", i);
    }
    return DBT_OK;
}

static void test_par(void)
{
    for (size_t threads = 0; threads <= 3; threads++) {
        static struct par_case c;
        memset(&c, 0, sizeof(c));
        c.fail_a = c.fail_b = SIZE_MAX;
        CHECK_OK(dbt_par_run(200, threads, par_job, &c));
        for (size_t i = 0; i < 200; i++) {
            CHECK(atomic_load(&c.runs[i]) == 1);
        }
        /* two failures: the lower one is reported, every index below it ran */
        memset(&c, 0, sizeof(c));
        c.fail_a = 57;
        c.fail_b = 120;
        dbt_errclear();
        dbt_res r = dbt_par_run(200, threads, par_job, &c);
        CHECK(r.code == DBT_E_CRYPTO);
        CHECK(strcmp(dbt_errmsg(), "job 57 failed") == 0);
        for (size_t i = 0; i <= 57; i++) {
            CHECK(atomic_load(&c.runs[i]) == 1);
        }
    }
    CHECK_OK(dbt_par_run(0, 0, par_job, NULL));
}

int main(void)
{
    test_reader_ints();
    test_reader_text();
    test_reader_lenenc();
    test_reader_cstr();
    test_writer();
    test_buf();
    test_err();
    test_par();
    return check_exit();
}
