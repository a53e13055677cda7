/*
 * path.h - ZooKeeper's path rules (PathUtils.validatePath), on UTF-8 bytes.
 */
#ifndef ZKD_PROCESSORS_PATH_H
#define ZKD_PROCESSORS_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* True if ZooKeeper would accept `path` as a node path. Java sees the path as
 * UTF-16, so a character outside the BMP (a surrogate pair there) and bytes
 * that are not UTF-8 (U+FFFD there) are refused, as ZooKeeper refuses them. */
bool path_valid(const char *path, size_t len);
/* The paths a client may never delete: "/", "/zookeeper", its quota and config nodes. */
bool path_special(const char *path, size_t len);

#endif
