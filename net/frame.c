/*
 * frame.c - the length prefix of a frame on the client protocol, written
 * after its record (see net.h). Kept apart from the event loop so that
 * whatever writes frames without it (the fuzz harness's fake network)
 * frames them with the same code.
 */
#include <stdint.h>

#include "jute.h"
#include "net.h"

size_t net_frame_begin(struct jute_writer *w)
{
	size_t mark = w->len;
	jute_write_int(w, 0);
	return mark;
}

void net_frame_end(struct jute_writer *w, size_t mark)
{
	size_t n = w->len - mark - 4;
	if (w->len < mark + 4 || n > INT32_MAX) {
		if (w->err == JUTE_OK)
			w->err = JUTE_BADLEN;
		return;
	}
	jute_patch_int(w, mark, (int32_t)n);
}
