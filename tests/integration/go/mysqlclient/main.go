// mysqlclient: one MySQL/MariaDB connection with Go's database/sql and go-sql-driver/mysql 1.5
// (Debian's golang-github-go-sql-driver-mysql-dev), over Go's own crypto/tls: TLS inside the
// MySQL handshake, the server certificate verified against a CA file and a server name, and an
// optional client certificate.
//
// Usage: mysqlclient ADDR USER PASSWORD SERVERNAME CAFILE|- [CERT KEY] -- SQL  (-: no TLS)
// Prints "OK <first column>" or "ERR <error>" (exit 1).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"os"

	"github.com/go-sql-driver/mysql"
)

func fail(err error) {
	fmt.Println("ERR", err)
	os.Exit(1)
}

func main() {
	a := os.Args[1:]
	if len(a) != 7 && len(a) != 9 {
		fmt.Fprintln(os.Stderr, "usage: mysqlclient ADDR USER PASSWORD SERVERNAME CAFILE [CERT KEY] -- SQL")
		os.Exit(2)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", a[0], a[1], a[2]
	if a[4] == "-" { // no TLS at all
		query(cfg, a[len(a)-1])
		return
	}
	pem, err := os.ReadFile(a[4])
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots, ServerName: a[3], MinVersion: tls.VersionTLS12}
	if len(a) == 9 {
		kp, err := tls.LoadX509KeyPair(a[5], a[6])
		if err != nil {
			fail(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if err := mysql.RegisterTLSConfig("front", tc); err != nil {
		fail(err)
	}
	cfg.TLSConfig = "front"
	query(cfg, a[len(a)-1])
}

func query(cfg *mysql.Config, q string) {
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		fail(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(q).Scan(&v); err != nil {
		fail(err)
	}
	fmt.Println("OK", v)
}
