/*
 * tsan.c - the one object ThreadSanitizer builds synchronize RCU grace
 * periods on (see tsan.h). Other builds never touch it.
 */
#include "tsan.h"

char zkd_rcu_grace;
