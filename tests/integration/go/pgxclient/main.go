// pgxclient: one PostgreSQL connection with pgx v4 (Debian's golang-github-jackc-pgx-v4-dev),
// whose TLS is Go's own crypto/tls, not OpenSSL: a client independent of dbtlsd's library on
// both the wire protocol and TLS. Every host name resolves to 127.0.0.1 (no /etc/hosts), so the
// name still goes into the TLS server name (SNI) and the certificate check.
//
// Usage: pgxclient DSN SQL
// Prints "OK <first column> <TLS version> <cipher suite> <server certificate CN>" (TLS fields
// "-" without TLS), or "ERR <error>" and exits 1.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v4"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pgxclient DSN SQL")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(os.Args[1])
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		return []string{"127.0.0.1"}, nil
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, os.Args[2]).Scan(&v); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	version, suite, cn := "-", "-", "-"
	if tc, ok := conn.PgConn().Conn().(*tls.Conn); ok {
		st := tc.ConnectionState()
		version = map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[st.Version]
		suite = tls.CipherSuiteName(st.CipherSuite)
		if len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
	}
	fmt.Println("OK", v, version, suite, cn)
}
