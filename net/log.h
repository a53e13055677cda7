/*
 * log.h - one line per event: time, level, thread, message.
 *
 *   2026-11-22T01:02:03.456Z INFO  [zkd-io-0] session 0x1000a2b3c4d0000: closed by client
 *
 * The thread is the name set by log_thread_name() (which also names the
 * pthread for top/gdb/perf). Messages about a session or peer say which in
 * their text. Every directory logs through this file, which is why it lives
 * in net/, the one directory all others may include.
 */
#ifndef ZKD_NET_LOG_H
#define ZKD_NET_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Lines below this level are dropped; default LOG_INFO. */
void log_set_level(enum log_level lvl);
/* Names the calling thread (pthread_setname_np, 15 chars max) for logs. */
void log_thread_name(const char *name);
void zlog(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) zlog(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  zlog(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  zlog(LOG_WARN, __VA_ARGS__)
#define log_error(...) zlog(LOG_ERROR, __VA_ARGS__)

#endif
