/*
 * sql.c - every piece of SQL text dbtls runs against its SQLite store: the schema migrations
 * (one per user_version step) and the statements ctl uses by id (enum dbt_sql in store.h).
 * Keeping it in one file makes the schema reviewable at a glance and lets another backend supply
 * its own text for the same ids. Column order of each SELECT is part of the contract with ctl
 * and is written in the comment beside it.
 *
 * Tables:
 *   counter       one row; n is bumped in the transaction of every change (dbtlsd polls it)
 *   settings      key/value (default_ca_id)
 *   cas           shared CAs: one root per ca_id (region '') and one intermediate per region
 *   instances     every attribute of DESIGN.md §1 plus the client CA (cert, sealed key) and CRL
 *   server_slots  previous/active/upcoming per instance: per-instance server CA (cert + sealed
 *                 key) or the shared (ca_id, region) that issued it, and the server cert + key
 *   client_certs  live client certificates: name, serial, SHA-1, cert PEM (never the key)
 *   revocations   revoked client certs per client CA (by its SHA-1), the CRL's content
 *   events        the audit trail
 *   admin_certs   admin client certificates (admin_ca.h): name, serial, SHA-1, created,
 *                 expires, revoked_at (NULL = live); the revoked ones make the admin CRL
 */
#include "store/store.h"

static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);"
    "INSERT INTO counter (id, n) VALUES (1, 0);"
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE cas ("
    "  ca_id TEXT NOT NULL, region TEXT NOT NULL, key_type TEXT NOT NULL,"
    "  digest TEXT NOT NULL, cert_pem TEXT NOT NULL, key_blob BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL, PRIMARY KEY (ca_id, region));"
    "CREATE TABLE instances ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, engine TEXT NOT NULL,"
    "  engine_version TEXT NOT NULL, listen TEXT NOT NULL UNIQUE, backend TEXT NOT NULL,"
    "  backend_tls_ca TEXT, endpoints TEXT NOT NULL, region TEXT NOT NULL,"
    "  ca_mode TEXT NOT NULL CHECK (ca_mode IN ('shared', 'per-instance')),"
    "  ca_id TEXT NOT NULL, ssl_mode TEXT NOT NULL, tls_min TEXT NOT NULL,"
    "  tls_max TEXT NOT NULL, ciphers TEXT NOT NULL, ciphersuites TEXT, groups TEXT,"
    "  hba_text TEXT, ident_text TEXT, user_require_text TEXT,"
    "  max_client_certs INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL, client_ca_pem TEXT NOT NULL,"
    "  client_ca_key_blob BLOB NOT NULL, client_ca_sha1 TEXT NOT NULL, crl_pem TEXT NOT NULL,"
    "  crl_number INTEGER NOT NULL);"
    "CREATE TABLE server_slots ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  slot TEXT NOT NULL CHECK (slot IN ('previous', 'active', 'upcoming')),"
    "  ca_pem TEXT, ca_key_blob BLOB, shared_ca_id TEXT, shared_region TEXT,"
    "  cert_pem TEXT NOT NULL, key_blob BLOB NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (instance_id, slot),"
    "  FOREIGN KEY (shared_ca_id, shared_region) REFERENCES cas(ca_id, region),"
    "  CHECK ((ca_pem IS NULL) <> (shared_ca_id IS NULL)));"
    "CREATE TABLE client_certs ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, serial TEXT NOT NULL, sha1 TEXT NOT NULL, cert_pem TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, PRIMARY KEY (instance_id, name));"
    "CREATE INDEX client_certs_sha1 ON client_certs (sha1);"
    "CREATE TABLE revocations ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  client_ca_sha1 TEXT NOT NULL, serial TEXT NOT NULL, name TEXT, sha1 TEXT,"
    "  revoked_at INTEGER NOT NULL);"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor TEXT NOT NULL,"
    "  action TEXT NOT NULL, object TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');",
    /* 2: automatic rotation policy per instance (no row = the CA mode's default), notices the
       scheduler raised once (so a restart does not raise them again), and per notification sink
       the id of the last event delivered (at-least-once delivery across restarts) */
    "CREATE TABLE rotation_policy ("
    "  instance_id INTEGER PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,"
    "  mode TEXT CHECK (mode IN ('auto', 'manual')), lead_days INTEGER"
    "  CHECK (lead_days IS NULL OR lead_days >= 0));"
    "CREATE TABLE notices ("
    "  instance_id INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL, serial TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (instance_id, kind, serial));"
    "CREATE TABLE notify_marks (sink TEXT PRIMARY KEY, last_event_id INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);",
    /* 3: admin client certificates (ctl/admin_ca.h), so they can be listed and revoked; a
       revoked row stays (revoked_at set) and goes into the admin CA's CRL. Certificates issued
       before this step are recovered from their "admin-cert.create" events (detail
       "name=NAME serial=HEX"; a name cannot hold "=") without fingerprint or expiry, which
       those events did not record, so a key leaked before the upgrade can be revoked too. */
    "CREATE TABLE admin_certs ("
    "  serial TEXT PRIMARY KEY, name TEXT NOT NULL, sha1 TEXT, created_at INTEGER NOT NULL,"
    "  expires_at INTEGER, revoked_at INTEGER);"
    "CREATE INDEX admin_certs_name ON admin_certs (name);"
    "CREATE INDEX admin_certs_sha1 ON admin_certs (sha1);"
    "INSERT OR IGNORE INTO admin_certs (serial, name, created_at)"
    "  SELECT substr(detail, instr(detail, ' serial=') + 8),"
    "         substr(detail, 6, instr(detail, ' serial=') - 6), time FROM events"
    "  WHERE action = 'admin-cert.create' AND detail LIKE 'name=% serial=%' ORDER BY id;",
    /* 4: when the scheduler said an admin certificate nears its expiry (once per certificate) */
    "ALTER TABLE admin_certs ADD COLUMN expiring_noticed_at INTEGER;",
    /* 5: PostgreSQL instances may share a listen address (the TLS server name chooses, ctl
       checks the rest): the table is rebuilt without UNIQUE (listen), SQLite's way of dropping
       a constraint; the migration runs with foreign keys off, so nothing cascades */
    "CREATE TABLE instances_new ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, engine TEXT NOT NULL,"
    "  engine_version TEXT NOT NULL, listen TEXT NOT NULL, backend TEXT NOT NULL,"
    "  backend_tls_ca TEXT, endpoints TEXT NOT NULL, region TEXT NOT NULL,"
    "  ca_mode TEXT NOT NULL CHECK (ca_mode IN ('shared', 'per-instance')),"
    "  ca_id TEXT NOT NULL, ssl_mode TEXT NOT NULL, tls_min TEXT NOT NULL,"
    "  tls_max TEXT NOT NULL, ciphers TEXT NOT NULL, ciphersuites TEXT, groups TEXT,"
    "  hba_text TEXT, ident_text TEXT, user_require_text TEXT,"
    "  max_client_certs INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL, client_ca_pem TEXT NOT NULL,"
    "  client_ca_key_blob BLOB NOT NULL, client_ca_sha1 TEXT NOT NULL, crl_pem TEXT NOT NULL,"
    "  crl_number INTEGER NOT NULL);"
    "INSERT INTO instances_new SELECT id, name, engine, engine_version, listen, backend,"
    "  backend_tls_ca, endpoints, region, ca_mode, ca_id, ssl_mode, tls_min, tls_max, ciphers,"
    "  ciphersuites, groups, hba_text, ident_text, user_require_text, max_client_certs,"
    "  created_at, updated_at, client_ca_pem, client_ca_key_blob, client_ca_sha1, crl_pem,"
    "  crl_number FROM instances;"
    "DROP TABLE instances;"
    "ALTER TABLE instances_new RENAME TO instances;"
    "CREATE INDEX instances_listen ON instances (listen);",
    /* 6: the certificate and key files dbtlsd presents to a backend that wants a client
       certificate (paths, like backend_tls_ca; the files stay the operator's), and whether
       dbtlsd tells a PostgreSQL backend the client's address and TLS facts (client_info) */
    "ALTER TABLE instances ADD COLUMN backend_tls_cert TEXT;"
    "ALTER TABLE instances ADD COLUMN backend_tls_key TEXT;"
    "ALTER TABLE instances ADD COLUMN client_info INTEGER NOT NULL DEFAULT 0;",
};

#define INSTANCE_COLS                                                                              \
    "id, name, engine, engine_version, listen, backend, backend_tls_ca, endpoints, region, "       \
    "ca_mode, ca_id, ssl_mode, tls_min, tls_max, ciphers, ciphersuites, groups, hba_text, "        \
    "ident_text, user_require_text, max_client_certs, created_at, updated_at, client_ca_pem, "     \
    "client_ca_key_blob, client_ca_sha1, crl_pem, crl_number, backend_tls_cert, backend_tls_key, " \
    "client_info"
#define SLOT_COLS                                                                                  \
    "slot, ca_pem, ca_key_blob, shared_ca_id, shared_region, cert_pem, key_blob, created_at"
#define CA_COLS "ca_id, region, key_type, digest, cert_pem, key_blob, created_at"
#define CLIENT_COLS "name, serial, sha1, cert_pem, created_at"
#define ADMIN_CERT_COLS "name, serial, sha1, created_at, expires_at, revoked_at"

static const char *const statements[DBT_SQL__COUNT] = {
    [DBT_SQL_COUNTER_GET] = "SELECT n FROM counter WHERE id = 1",
    [DBT_SQL_COUNTER_BUMP] = "UPDATE counter SET n = n + 1 WHERE id = 1",
    /* ?1 n (a restored store continues above the counter of the store it replaces) */
    [DBT_SQL_COUNTER_SET] = "UPDATE counter SET n = ?1 WHERE id = 1",
    /* -> value */
    [DBT_SQL_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
    [DBT_SQL_SETTING_PUT] = "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [DBT_SQL_EVENT_ADD] = "INSERT INTO events (time, actor, action, object, detail) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)",
    /* ?1 instance name or NULL, ?2 limit (-1 = all) -> id, time, actor, action, object, detail;
       the newest ?2 events, oldest first */
    [DBT_SQL_EVENT_LIST] = "SELECT id, time, actor, action, object, detail FROM ("
                           "  SELECT * FROM events WHERE ?1 IS NULL OR object = 'instance/' || ?1"
                           "  OR substr(object, 1, length(?1) + 10) = 'instance/' || ?1 || '/'"
                           "  ORDER BY id DESC LIMIT ?2) ORDER BY id",
    [DBT_SQL_EVENT_COUNT] = "SELECT count(*) FROM events",
    [DBT_SQL_CA_ADD] = "INSERT INTO cas (" CA_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* -> CA_COLS */
    [DBT_SQL_CA_GET] = "SELECT " CA_COLS " FROM cas WHERE ca_id = ?1 AND region = ?2",
    [DBT_SQL_CA_ROOTS] = "SELECT " CA_COLS " FROM cas WHERE region = '' ORDER BY ca_id",
    /* -> region */
    [DBT_SQL_CA_REGIONS] =
        "SELECT region FROM cas WHERE ca_id = ?1 AND region <> '' ORDER BY region",
    /* ?1 ca_id, ?2 region or NULL -> CA_COLS */
    [DBT_SQL_CA_INTERMEDIATES] = "SELECT " CA_COLS " FROM cas WHERE ca_id = ?1 AND region <> ''"
                                 " AND (?2 IS NULL OR region = ?2) ORDER BY region",
    [DBT_SQL_CA_COUNT] = "SELECT count(*) FROM cas",
    /* ?1 ca_id -> how many instances (ca_id) and server certificate slots use it */
    [DBT_SQL_CA_USERS] = "SELECT (SELECT count(*) FROM instances WHERE ca_id = ?1)"
                         " + (SELECT count(*) FROM server_slots WHERE shared_ca_id = ?1)",
    [DBT_SQL_CA_DELETE] = "DELETE FROM cas WHERE ca_id = ?1",
    /* ?1..?30 = INSTANCE_COLS[1..30] -> id */
    [DBT_SQL_INSTANCE_ADD] =
        "INSERT INTO instances (name, engine, engine_version, listen, backend, backend_tls_ca,"
        " endpoints, region, ca_mode, ca_id, ssl_mode, tls_min, tls_max, ciphers, ciphersuites,"
        " groups, hba_text, ident_text, user_require_text, max_client_certs, created_at,"
        " updated_at, client_ca_pem, client_ca_key_blob, client_ca_sha1, crl_pem, crl_number,"
        " backend_tls_cert, backend_tls_key, client_info)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
        " ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30) RETURNING id",
    /* -> INSTANCE_COLS */
    [DBT_SQL_INSTANCE_GET] = "SELECT " INSTANCE_COLS " FROM instances WHERE name = ?1",
    [DBT_SQL_INSTANCE_NAMES] = "SELECT name FROM instances ORDER BY name",
    /* the first instance on a shared listen address is the one created first */
    [DBT_SQL_INSTANCE_NAMES_BY_AGE] = "SELECT name FROM instances ORDER BY id",
    /* ?1 listen, ?2 id to exclude -> name */
    [DBT_SQL_INSTANCE_BY_LISTEN] = "SELECT name FROM instances WHERE listen = ?1 AND id <> ?2",
    [DBT_SQL_INSTANCE_UPDATE] =
        "UPDATE instances SET engine_version = ?2, listen = ?3, backend = ?4,"
        " backend_tls_ca = ?5, endpoints = ?6, ca_mode = ?7, ca_id = ?8, ssl_mode = ?9,"
        " tls_min = ?10, tls_max = ?11, ciphers = ?12, ciphersuites = ?13, groups = ?14,"
        " hba_text = ?15, ident_text = ?16, user_require_text = ?17, max_client_certs = ?18,"
        " updated_at = ?19, backend_tls_cert = ?20, backend_tls_key = ?21, client_info = ?22"
        " WHERE id = ?1",
    [DBT_SQL_INSTANCE_SET_CLIENT_CA] =
        "UPDATE instances SET client_ca_pem = ?2, client_ca_key_blob = ?3,"
        " client_ca_sha1 = ?4, crl_pem = ?5, crl_number = ?6, updated_at = ?7 WHERE id = ?1",
    [DBT_SQL_INSTANCE_SET_CRL] = "UPDATE instances SET crl_pem = ?2, crl_number = ?3 WHERE id = ?1",
    [DBT_SQL_INSTANCE_DELETE] = "DELETE FROM instances WHERE id = ?1",
    [DBT_SQL_INSTANCE_COUNT] = "SELECT count(*) FROM instances",
    /* ?1 instance id, ?2 slot, ?3..?9 SLOT_COLS[1..7] */
    [DBT_SQL_SLOT_PUT] = "INSERT OR REPLACE INTO server_slots (instance_id, " SLOT_COLS
                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    /* ?1 instance id -> SLOT_COLS, active, upcoming, previous */
    [DBT_SQL_SLOT_GET] = "SELECT " SLOT_COLS " FROM server_slots WHERE instance_id = ?1"
                         " ORDER BY CASE slot WHEN 'active' THEN 0 WHEN 'upcoming' THEN 1"
                         " ELSE 2 END",
    [DBT_SQL_SLOT_DELETE] = "DELETE FROM server_slots WHERE instance_id = ?1 AND slot = ?2",
    [DBT_SQL_SLOT_DELETE_ALL] = "DELETE FROM server_slots WHERE instance_id = ?1",
    /* ?1 instance id, ?2 from, ?3 to */
    [DBT_SQL_SLOT_RENAME] =
        "UPDATE server_slots SET slot = ?3 WHERE instance_id = ?1 AND slot = ?2",
    [DBT_SQL_SLOT_COUNT] = "SELECT count(*) FROM server_slots",
    /* ?1 instance id, ?2..?6 CLIENT_COLS */
    [DBT_SQL_CLIENT_ADD] =
        "INSERT INTO client_certs (instance_id, " CLIENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* -> CLIENT_COLS */
    [DBT_SQL_CLIENT_LIST] =
        "SELECT " CLIENT_COLS " FROM client_certs WHERE instance_id = ?1 ORDER BY name",
    /* ?1 instance id, ?2 name, ?3 sha1 (lower case) -> CLIENT_COLS */
    [DBT_SQL_CLIENT_FIND] = "SELECT " CLIENT_COLS " FROM client_certs WHERE instance_id = ?1"
                            " AND (name = ?2 OR sha1 = ?3) ORDER BY name = ?2 DESC LIMIT 1",
    /* ?1 instance id or NULL for all */
    [DBT_SQL_CLIENT_COUNT] =
        "SELECT count(*) FROM client_certs WHERE ?1 IS NULL OR instance_id = ?1",
    [DBT_SQL_CLIENT_DELETE] = "DELETE FROM client_certs WHERE instance_id = ?1 AND name = ?2",
    [DBT_SQL_CLIENT_DELETE_ALL] = "DELETE FROM client_certs WHERE instance_id = ?1",
    [DBT_SQL_REVOKE_ADD] = "INSERT INTO revocations (instance_id, client_ca_sha1, serial, name,"
                           " sha1, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* ?1 instance id, ?2 client CA sha1 -> serial, revoked_at */
    [DBT_SQL_REVOKE_LIST] = "SELECT serial, revoked_at FROM revocations WHERE instance_id = ?1"
                            " AND client_ca_sha1 = ?2 ORDER BY revoked_at, serial",
    [DBT_SQL_REVOKE_COUNT] = "SELECT count(*) FROM revocations",
    /* ?1 instance id -> mode (or NULL), lead_days (or NULL) */
    [DBT_SQL_ROTATION_GET] = "SELECT mode, lead_days FROM rotation_policy WHERE instance_id = ?1",
    /* ?1 instance id, ?2 mode, ?3 lead_days (NULL = default) */
    [DBT_SQL_ROTATION_PUT] = "INSERT OR REPLACE INTO rotation_policy (instance_id, mode, lead_days)"
                             " VALUES (?1, ?2, ?3)",
    /* ?1 instance id, ?2 kind, ?3 serial, ?4 time; changes() = 0 when already raised */
    [DBT_SQL_NOTICE_ADD] = "INSERT OR IGNORE INTO notices (instance_id, kind, serial, created_at)"
                           " VALUES (?1, ?2, ?3, ?4)",
    /* ?1 instance id, ?2 kind, ?3 serial -> 1 if raised */
    [DBT_SQL_NOTICE_HAS] = "SELECT 1 FROM notices WHERE instance_id = ?1 AND kind = ?2"
                           " AND serial = ?3",
    /* ?1 sink -> last_event_id */
    [DBT_SQL_NOTIFY_MARK_GET] = "SELECT last_event_id FROM notify_marks WHERE sink = ?1",
    /* ?1 sink, ?2 last_event_id, ?3 time */
    [DBT_SQL_NOTIFY_MARK_PUT] = "INSERT INTO notify_marks (sink, last_event_id, updated_at)"
                                " VALUES (?1, ?2, ?3) ON CONFLICT (sink) DO UPDATE SET"
                                " last_event_id = excluded.last_event_id,"
                                " updated_at = excluded.updated_at",
    /* ?1 after id, ?2 limit -> id, time, actor, action, object, detail; oldest first */
    [DBT_SQL_EVENT_AFTER] = "SELECT id, time, actor, action, object, detail FROM events"
                            " WHERE id > ?1 ORDER BY id LIMIT ?2",
    [DBT_SQL_EVENT_MAX_ID] = "SELECT coalesce(max(id), 0) FROM events",
    /* ?1..?6 ADMIN_CERT_COLS (revoked_at NULL) */
    [DBT_SQL_ADMIN_CERT_ADD] =
        "INSERT INTO admin_certs (" ADMIN_CERT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* -> ADMIN_CERT_COLS */
    [DBT_SQL_ADMIN_CERT_LIST] =
        "SELECT " ADMIN_CERT_COLS " FROM admin_certs ORDER BY name, created_at, serial",
    /* ?1 name, ?2 sha1 (lower case) -> ADMIN_CERT_COLS, live ones first */
    [DBT_SQL_ADMIN_CERT_FIND] = "SELECT " ADMIN_CERT_COLS " FROM admin_certs WHERE name = ?1"
                                " OR sha1 = ?2 ORDER BY revoked_at IS NOT NULL, created_at, serial",
    /* ?1 serial, ?2 time; changes() = 0 when it was revoked already */
    [DBT_SQL_ADMIN_CERT_REVOKE] = "UPDATE admin_certs SET revoked_at = ?2 WHERE serial = ?1"
                                  " AND revoked_at IS NULL",
    /* -> serial, revoked_at: the admin CRL's entries */
    [DBT_SQL_ADMIN_CERT_REVOKED] = "SELECT serial, revoked_at FROM admin_certs"
                                   " WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
    /* -> name, serial, created_at, expires_at: live certificates not yet said to expire soon */
    [DBT_SQL_ADMIN_CERT_UNNOTICED] = "SELECT name, serial, created_at, expires_at FROM admin_certs"
                                     " WHERE revoked_at IS NULL AND expires_at IS NOT NULL"
                                     " AND expiring_noticed_at IS NULL ORDER BY name, serial",
    /* ?1 serial, ?2 now */
    [DBT_SQL_ADMIN_CERT_NOTICED] =
        "UPDATE admin_certs SET expiring_noticed_at = ?2 WHERE serial = ?1",
    /* -> ca_id, region, cert_pem, key_blob */
    [DBT_SQL_SEALED_CAS] =
        "SELECT ca_id, region, cert_pem, key_blob FROM cas ORDER BY ca_id, region",
    [DBT_SQL_SEALED_CA_SET] = "UPDATE cas SET key_blob = ?3 WHERE ca_id = ?1 AND region = ?2",
    /* -> id, name, client_ca_pem, client_ca_key_blob */
    [DBT_SQL_SEALED_CLIENT_CAS] =
        "SELECT id, name, client_ca_pem, client_ca_key_blob FROM instances ORDER BY id",
    [DBT_SQL_SEALED_CLIENT_CA_SET] = "UPDATE instances SET client_ca_key_blob = ?2 WHERE id = ?1",
    /* -> instance_id, instance name, slot, ca_pem, ca_key_blob, cert_pem, key_blob */
    [DBT_SQL_SEALED_SLOTS] =
        "SELECT s.instance_id, i.name, s.slot, s.ca_pem, s.ca_key_blob, s.cert_pem, s.key_blob"
        " FROM server_slots s JOIN instances i ON i.id = s.instance_id"
        " ORDER BY s.instance_id, s.slot",
    [DBT_SQL_SEALED_SLOT_CA_SET] =
        "UPDATE server_slots SET ca_key_blob = ?3 WHERE instance_id = ?1 AND slot = ?2",
    [DBT_SQL_SEALED_SLOT_KEY_SET] =
        "UPDATE server_slots SET key_blob = ?3 WHERE instance_id = ?1 AND slot = ?2",
    /* -> instance name, slot, cert_pem of every server certificate a shared CA issued */
    [DBT_SQL_CA_ISSUED] = "SELECT i.name, s.slot, s.cert_pem FROM server_slots s"
                          " JOIN instances i ON i.id = s.instance_id WHERE s.shared_ca_id = ?1"
                          " ORDER BY i.name, s.slot",
    [DBT_SQL_CA_RENEW] =
        "UPDATE cas SET cert_pem = ?3, key_blob = ?4 WHERE ca_id = ?1 AND region = ?2",
    /* restoring a copy (ctl/restore.c) compares it with the store it replaces:
       -> id, name, client_ca_sha1, crl_number */
    [DBT_SQL_RESTORE_INSTANCES] =
        "SELECT id, name, client_ca_sha1, crl_number FROM instances ORDER BY name",
    /* -> client CA sha1, name, serial, sha1, cert_pem, created_at of every live client cert */
    [DBT_SQL_RESTORE_CLIENTS] = "SELECT i.client_ca_sha1, c.name, c.serial, c.sha1, c.cert_pem,"
                                " c.created_at FROM client_certs c"
                                " JOIN instances i ON i.id = c.instance_id ORDER BY i.name, c.name",
    /* -> client CA sha1, serial, name, sha1, revoked_at of every revocation */
    [DBT_SQL_RESTORE_REVOKED] = "SELECT client_ca_sha1, serial, name, sha1, revoked_at"
                                " FROM revocations ORDER BY revoked_at, serial",
    /* ?1 client CA sha1, ?2 serial -> 1 (a live client cert), 2 (revoked): what the store
       knows of that serial */
    [DBT_SQL_RESTORE_SERIAL] =
        "SELECT 1 FROM client_certs c JOIN instances i ON i.id = c.instance_id"
        " WHERE i.client_ca_sha1 = ?1 AND c.serial = ?2"
        " UNION ALL SELECT 2 FROM revocations WHERE client_ca_sha1 = ?1 AND serial = ?2",
    /* ?1 instance id, ?2 serial */
    [DBT_SQL_CLIENT_DELETE_SERIAL] =
        "DELETE FROM client_certs WHERE instance_id = ?1 AND serial = ?2",
    /* ?1 serial -> revoked_at (NULL: live) */
    [DBT_SQL_ADMIN_CERT_BY_SERIAL] = "SELECT revoked_at FROM admin_certs WHERE serial = ?1",
    /* ?1..?6 id, time, actor, action, object, detail: an event carried with its id */
    [DBT_SQL_EVENT_PUT] = "INSERT INTO events (id, time, actor, action, object, detail)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* -> sink, last_event_id, updated_at */
    [DBT_SQL_NOTIFY_MARKS] = "SELECT sink, last_event_id, updated_at FROM notify_marks",
    /* -> the time of the newest event (0 when none) */
    [DBT_SQL_EVENT_LAST_TIME] = "SELECT coalesce(max(time), 0) FROM events",
};

/* Replacing the whole SQLite store by a restored copy attached as restore_src
   (store_sqlite.c): same tables with the same columns, emptied and refilled in one write
   transaction with foreign keys off (no cascades; SQLite's deferred-constraint counter does not
   come back to zero when a parent is deleted before its children), then checked whole. */
const struct dbt_sql_replace dbt_sql_replace = {
    .attach = "ATTACH DATABASE ?1 AS restore_src",
    .detach = "DETACH DATABASE restore_src",
    .counter = "SELECT n FROM main.counter WHERE id = 1",
    .tables_main = "SELECT group_concat(name, ',') FROM (SELECT name FROM main.sqlite_master"
                   " WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%' ORDER BY name)",
    .tables_src = "SELECT name FROM restore_src.sqlite_master"
                  " WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%' ORDER BY name",
    .columns = "SELECT group_concat(name, ',') FROM"
               " (SELECT name FROM pragma_table_info(?1, ?2) ORDER BY cid)",
    .fk_off = "PRAGMA foreign_keys = OFF",
    .fk_on = "PRAGMA foreign_keys = ON",
    .fk_check = "PRAGMA main.foreign_key_check",
    .empty = "DELETE FROM main.\"%w\"", /* the name is given twice: fill needs it so */
    .fill = "INSERT INTO main.\"%w\" SELECT * FROM restore_src.\"%w\"",
};

int dbt_store_schema_version(void)
{
    return (int)DBT_ARRAY_LEN(migrations);
}

const char *dbt_sql_text(enum dbt_sql id)
{
    if ((int)id < 0 || id >= DBT_SQL__COUNT) {
        return NULL;
    }
    return statements[id];
}

const char *dbt_sql_migration(int i)
{
    if (i < 1 || i > (int)DBT_ARRAY_LEN(migrations)) {
        return NULL;
    }
    return migrations[i - 1];
}
