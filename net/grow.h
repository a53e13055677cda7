/*
 * grow.h - room for one more element in an array that doubles as it
 * fills, the pattern every list built on the fly uses (watch dumps,
 * sessions for a snapshot, mntr's table, ...).
 *
 *   struct item *v = grow_for(l->v, l->n, &l->cap, sizeof *v, 64);
 *   if (!v)
 *           return;             // out of memory: l->v is untouched
 *   l->v = v;
 *   l->v[l->n++] = item;
 */
#ifndef ZKD_NET_GROW_H
#define ZKD_NET_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* v holds n elements of `size` bytes in room for *cap. Returns v itself
 * when there is room for one more, else v moved into twice the room (or
 * `first` elements the first time), updating *cap; NULL when memory is
 * short, leaving v and *cap as they were. */
static inline void *grow_for(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	if (n < *cap)
		return v;
	size_t want = *cap ? *cap * 2 : first;
	if (want > SIZE_MAX / size)
		return NULL;
	void *nv = realloc(v, want * size);
	if (nv)
		*cap = want;
	return nv;
}

#endif
