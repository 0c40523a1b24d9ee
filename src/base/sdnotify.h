/*
 * sdnotify.h - telling the service manager how the daemon is doing (systemd's sd_notify
 * protocol: one datagram of "KEY=value" lines to the unix socket named by $NOTIFY_SOCKET, a path
 * or "@abstract"). READY=1 lets `Type=notify` units start dependants only once dbtlsd serves;
 * STATUS= shows in `systemctl status`; STOPPING=1 says a stop began. Without $NOTIFY_SOCKET (not
 * run by systemd) nothing is sent. The protocol is a stable, documented interface that systemd
 * asks daemons to speak without linking libsystemd; this is that, in a few lines.
 */
#ifndef DBT_BASE_SDNOTIFY_H
#define DBT_BASE_SDNOTIFY_H

#include <stdbool.h>

/* Sends printf-formatted state lines; false when $NOTIFY_SOCKET is unset or the send failed
   (never fatal: the daemon serves either way). Any thread. */
bool dbt_sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
