/*
 * keyed_image.c — checkpoint images of keyed state (state/keyed.h): the
 * header a state keeps outside the arena, and copying entries between
 * arenas when a checkpoint is restored onto a different number of cores.
 *
 * Same core count: the arena pages come back at the same ids, so saving
 * and loading the header (table, slab heads, TTL cursor) is the whole
 * restore.  Different core count: the old core's pages are loaded into a
 * scratch arena, its states rebuilt there with wr_kstate_load, and every
 * entry whose key group the new core owns is copied over, list and map
 * blocks included (a ref is an offset in its own arena, so blocks are
 * copied, never shared).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "state/keyed_internal.h"

void wr_kstate_save(const struct wr_kstate *s, struct wr_kstate_image *img)
{
	memset(img, 0, sizeof(*img));
	wr_table_save(s->table, &img->table);
	wr_slab_save(&s->slab, &img->slab);
	img->cursor = s->cursor.pos;
	img->expired_removed = s->expired_removed;
	img->evicted = s->evicted;
	img->eviction_passes = s->eviction_passes;
	img->cap_failures = s->cap_failures;
}

int wr_kstate_load(struct wr_arena *a, const struct weir_state_desc *d,
		   uint32_t key_size, const struct wr_kstate_options *opts,
		   const struct wr_kstate_image *img, struct wr_kstate **out)
{
	struct wr_kstate *s;
	int err = wr_kstate_alloc(a, d, key_size, opts, &s);

	if (err)
		return err;
	if (img->table.key_size != key_size ||
	    img->table.value_size != s->hdr + s->payload)
		err = wr_error(-EINVAL, "checkpoint: state '%s' was saved with "
			       "key/value size %u/%u, the job has %u/%u",
			       s->name, img->table.key_size,
			       img->table.value_size, key_size,
			       s->hdr + s->payload);
	if (err == 0 && wr_slab_load(&s->slab, a, &img->slab) != 0)
		err = wr_error(-EINVAL, "checkpoint: state '%s': bad slab "
			       "image", s->name);
	if (err == 0)
		err = wr_table_load(a, NULL, &img->table, &s->table);
	if (err) {
		free(s);
		return err;
	}
	s->cursor.pos = img->cursor;
	s->expired_removed = img->expired_removed;
	s->evicted = img->evicted;
	s->eviction_passes = img->eviction_passes;
	s->cap_failures = img->cap_failures;
	wr_kstate_join(s, opts);
	*out = s;
	return 0;
}

/* A LIST / MAP payload of src: the same block, copied into dst's slab. */
static int copy_block(struct wr_kstate *dst, const struct wr_kstate *src,
		      struct wr_coll_hdr *h)
{
	uint64_t bytes = (uint64_t)h->cap * src->elem, ref;
	int err;

	if (h->cap == 0)
		return 0;
	err = wr_slab_alloc(&dst->slab, bytes, &ref);
	if (err)
		return err;
	void *to = wr_slab_ptr(dst->arena, ref);
	err = wr_slab_touch(dst->arena, to, bytes);
	if (err) {
		wr_slab_free(&dst->slab, ref, bytes);
		return err;
	}
	memcpy(to, wr_slab_ptr(src->arena, h->ref), bytes);
	h->ref = ref;
	return 0;
}

static int copy_entry(struct wr_kstate *dst, const struct wr_kstate *src,
		      const void *key, uint64_t hash, const void *v)
{
	uint32_t size = src->hdr + src->payload;
	bool inserted;
	void *to;
	int err = wr_table_upsert(dst->table, key, hash, &to, &inserted);

	if (err)
		return err;
	memcpy(to, v, size);
	if (src->d.kind != WEIR_STATE_LIST && src->d.kind != WEIR_STATE_MAP)
		return 0;
	struct wr_coll_hdr h;
	memcpy(&h, wr_entry_payload(src, v), sizeof(h));
	err = copy_block(dst, src, &h);
	if (err) {
		(void)wr_table_remove(dst->table, key, hash);
		return err;
	}
	/* upsert_batch/upsert pointers stay valid until the next call. */
	memcpy(wr_entry_payload(dst, to), &h, sizeof(h));
	return 0;
}

int wr_kstate_copy_keys(struct wr_kstate *dst, struct wr_kstate *src,
			wr_kstate_keep_fn keep, void *arg)
{
	struct wr_table_iter it = { 0 };
	const void *k;
	void *v;

	if (dst->d.kind != src->d.kind || dst->key_size != src->key_size ||
	    dst->hdr + dst->payload != src->hdr + src->payload)
		return wr_error(-EINVAL, "checkpoint: state '%s' changed shape",
				dst->name);
	while (wr_table_next(src->table, &it, &k, &v)) {
		uint64_t hash = wr_table_hash(k, src->key_size);
		if (!keep(hash, arg))
			continue;
		int err = copy_entry(dst, src, k, hash, v);
		if (err)
			return err == -ENOMEM ?
				wr_error(err, "state '%s' reached the memory "
					 "cap of %zu bytes per core while "
					 "restoring", dst->name,
					 dst->arena->cap_bytes) : err;
	}
	return 0;
}
