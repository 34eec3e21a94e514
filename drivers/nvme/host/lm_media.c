// SPDX-License-Identifier: GPL-2.0
/*
 * Namespace I/O for media migration: the VF's variant driver copies a
 * namespace attached to the VF's secondary controller through the parent
 * PF's block device for it (read on the source host, write and write-zeroes
 * on the destination host).
 *
 * A claim (struct nvme_lm_media) opens the PF's block device for the
 * namespace exclusively and with BLK_OPEN_RESTRICT_WRITES, the claim itself
 * being the holder: while it exists, opening the device for writing
 * elsewhere on the host fails with -EBUSY, and so does a second claim (with
 * the bdev_allow_write_mounted=1 boot option, or CONFIG_BLK_DEV_WRITE_MOUNTED
 * as its default, the block layer lets other plain writers in; exclusive
 * openers are still refused).
 *
 * Lifetime: the claim points at its handle, so the handle's user closes
 * every claim before nvme_lm_put() (or nvme_lm_detach()), as the VF's
 * driver does in its remove(), which nvme_remove() of the PF runs first.
 * The open block device file keeps the gendisk's memory; once the PF is
 * not live or the namespace is gone from it, nvme_lm_media_rw() fails with
 * -ENODEV and touches nothing else.
 *
 * Durability: writes carry no FUA; nvme_lm_media_flush() makes everything
 * written through the claim durable, and the caller calls it once a copy is
 * complete, before reporting the media migrated.
 */

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/nvme-lm.h>
#include <linux/sched/task_stack.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "nvme.h"
#include "lm.h"

MODULE_IMPORT_NS("NVME_TARGET_PASSTHRU");	/* nvme_find_get_ns() */

/**
 * struct nvme_lm_media - a claim on a namespace of the VF, for migration I/O
 * @lm: the VF's handle, which outlives the claim
 * @bdev_file: the PF's block device for the namespace, opened exclusively
 *	for writing with @lm's claim as the holder
 * @nsid: the namespace's ID
 * @nsze: capacity in logical blocks, when the claim was made
 * @lbads: log2 of the logical block size
 * @inflight: batches submitted whose bios have not all completed;
 *	nvme_lm_media_close() waits for none
 */
struct nvme_lm_media {
	struct nvme_lm *lm;
	struct file *bdev_file;
	u32 nsid;
	u64 nsze;
	u8 lbads;
	atomic_t inflight;
};

/**
 * struct nvme_lm_media_req - one I/O of a batch, the private data of its bios
 * @batch: the batch
 * @buf: the I/O's buffer (NULL for a write-zeroes)
 * @len: its length in bytes
 * @op: the operation (enum nvme_lm_media_op)
 * @status: 0 or the first negative errno of its bios (set with cmpxchg)
 */
struct nvme_lm_media_req {
	struct nvme_lm_media_batch *batch;
	void *buf;
	unsigned int len;
	u8 op;
	int status;
};

/**
 * struct nvme_lm_media_batch - the bios of one nvme_lm_media_submit() call
 * @m: the claim, which waits for the batch to complete before it closes
 * @pending: bios in flight, plus one held by the submitter
 * @done: completed when @pending drops to zero
 * @n: the number of I/Os
 * @req: the I/Os
 */
struct nvme_lm_media_batch {
	struct nvme_lm_media *m;
	atomic_t pending;
	struct completion done;
	unsigned int n;
	struct nvme_lm_media_req req[] __counted_by(n);
};

/*
 * The longest piece of a vmalloc buffer one bio carries: with any offset
 * into its first page it spans at most BIO_MAX_VECS pages.
 */
#define NVME_LM_MEDIA_VMALLOC_PIECE	((BIO_MAX_VECS - 2) * PAGE_SIZE)

/* Chunks of a write-zeroes range, so that a bio's size fits its u32. */
#define NVME_LM_MEDIA_ZERO_CHUNK	(SZ_1G >> SECTOR_SHIFT)

static struct block_device *nvme_lm_media_bdev(const struct nvme_lm_media *m)
{
	return file_bdev(m->bdev_file);
}

/*
 * The gendisk the PF's users see for @ns: the multipath node if there is
 * one (the per-path disk is hidden and cannot be opened), else its own.
 */
static struct gendisk *nvme_lm_media_disk(struct nvme_ns *ns)
{
	if (nvme_ns_head_multipath(ns->head))
		return ns->head->disk;
	return ns->disk;
}

static void nvme_lm_media_err(struct nvme_lm *lm, u32 nsid, int err,
			      const char *why)
{
	dev_err_ratelimited(nvme_lm_vf_dev(lm),
			    "media migration: NSID %u: %s (%pe)\n", nsid, why,
			    ERR_PTR(err));
}

/**
 * nvme_lm_media_open() - claim a namespace of the VF for migration I/O
 * @lm: the VF's handle
 * @nsid: the namespace
 *
 * Checks that @nsid is attached to the VF's secondary controller (the
 * Controller List attached to it, Identify CNS 12h, read on the PF's admin
 * queue, names the VF's controller) and that the PF has a live block device
 * for it; then opens that block device exclusively for reading and writing
 * (BLK_OPEN_EXCL and BLK_OPEN_RESTRICT_WRITES, the claim being the holder),
 * so that nothing else on the host writes it while it is migrated. The
 * caller closes the claim before it releases @lm.
 *
 * Namespaces whose format has metadata (or protection information) are
 * refused for now.
 *
 * Context: process context, may sleep.
 * Return: the claim, or an ERR_PTR: -EINVAL for NSID 0 or the broadcast
 * NSID, -ENOENT if @nsid is not attached to the VF's controller, -ENODEV if
 * the PF cannot reach it (not attached to the PF, no block device, the PF
 * not live), -EBUSY if it is open for writing or claimed elsewhere,
 * -EOPNOTSUPP for a metadata format, -ENOMEM, or a command's error. Each
 * failure is logged (rate-limited) on the VF.
 */
struct nvme_lm_media *nvme_lm_media_open(struct nvme_lm *lm, u32 nsid)
{
	const blk_mode_t mode = BLK_OPEN_READ | BLK_OPEN_WRITE |
				BLK_OPEN_EXCL | BLK_OPEN_RESTRICT_WRITES;
	struct nvme_ctrl *ctrl = nvme_lm_pf_ctrl(lm);
	struct nvme_lm_media *m;
	struct gendisk *disk;
	struct nvme_ns *ns;
	struct file *f;
	dev_t devt;
	int ret;

	if (!nsid || nsid == NVME_NSID_ALL) {
		nvme_lm_media_err(lm, nsid, -EINVAL, "not a namespace ID");
		return ERR_PTR(-EINVAL);
	}
	ret = nvme_lm_ns_attached(lm, nsid);
	if (ret) {
		nvme_lm_media_err(lm, nsid, ret, ret == -ENOENT ?
				  "not attached to the VF's controller" :
				  "cannot read its Controller List");
		return ERR_PTR(ret);
	}

	ns = nvme_find_get_ns(ctrl, nsid);
	if (!ns) {
		nvme_lm_media_err(lm, nsid, -ENODEV,
				  "the PF has no namespace with this ID");
		return ERR_PTR(-ENODEV);
	}
	if (ns->head->ms || ns->head->pi_type) {
		nvme_put_ns(ns);
		nvme_lm_media_err(lm, nsid, -EOPNOTSUPP,
				  "metadata formats are not migrated");
		return ERR_PTR(-EOPNOTSUPP);
	}
	disk = nvme_lm_media_disk(ns);
	devt = disk_devt(disk);
	nvme_put_ns(ns);

	m = kzalloc_obj(*m, GFP_KERNEL);
	if (!m)
		return ERR_PTR(-ENOMEM);
	m->lm = lm;
	m->nsid = nsid;
	/* The disk may go between the lookup and here: the open then fails. */
	f = bdev_file_open_by_dev(devt, mode, m, NULL);
	if (IS_ERR(f)) {
		ret = PTR_ERR(f);
		if (ret == -ENXIO || ret == -ENOENT)
			ret = -ENODEV;
		nvme_lm_media_err(lm, nsid, ret, ret == -EBUSY ?
				  "the PF's block device is open for writing or claimed" :
				  "cannot open the PF's block device");
		goto out_free;
	}
	m->bdev_file = f;
	m->lbads = ilog2(bdev_logical_block_size(file_bdev(f)));
	m->nsze = bdev_nr_sectors(file_bdev(f)) >> (m->lbads - SECTOR_SHIFT);
	if (!m->nsze) {
		/* nvme-core gives formats it cannot use a capacity of 0. */
		ret = -EOPNOTSUPP;
		nvme_lm_media_err(lm, nsid, ret, "the PF cannot use its format");
		goto out_close;
	}
	return m;

out_close:
	fput(f);
out_free:
	kfree(m);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_open, NVME_LM_USERS);

/**
 * nvme_lm_media_close() - release a claim
 * @m: the claim (NULL or an ERR_PTR is ignored)
 *
 * Waits until every bio of the batches submitted on @m has completed (a
 * batch not waited for yet included), then closes the PF's block device:
 * other writers may open it again.
 *
 * Context: process context, may sleep.
 */
void nvme_lm_media_close(struct nvme_lm_media *m)
{
	if (IS_ERR_OR_NULL(m))
		return;
	wait_var_event(&m->inflight, !atomic_read(&m->inflight));
	/* Synchronous, so that the claim is gone when this returns. */
	bdev_fput(m->bdev_file);
	kfree(m);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_close, NVME_LM_USERS);

/**
 * nvme_lm_media_nsze() - capacity of the claimed namespace
 * @m: the claim
 *
 * Return: the capacity in logical blocks, as the PF saw it at the claim.
 */
u64 nvme_lm_media_nsze(const struct nvme_lm_media *m)
{
	return m->nsze;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_nsze, NVME_LM_USERS);

/**
 * nvme_lm_media_lbads() - logical block size of the claimed namespace
 * @m: the claim
 *
 * Return: log2 of the logical block size in bytes.
 */
u8 nvme_lm_media_lbads(const struct nvme_lm_media *m)
{
	return m->lbads;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_lbads, NVME_LM_USERS);

/*
 * -ENODEV unless the PF is live and the claimed disk still is, with the
 * format of the claim.
 */
static int nvme_lm_media_usable(struct nvme_lm_media *m)
{
	struct block_device *bdev = nvme_lm_media_bdev(m);

	if (nvme_ctrl_state(nvme_lm_pf_ctrl(m->lm)) != NVME_CTRL_LIVE ||
	    !disk_live(bdev->bd_disk) ||
	    bdev_logical_block_size(bdev) != 1U << m->lbads) {
		nvme_lm_media_err(m->lm, m->nsid, -ENODEV,
				  "the PF or its namespace is gone or changed");
		return -ENODEV;
	}
	return 0;
}

/*
 * Whether @len bytes at @buf are memory the PF may transfer by DMA: in the
 * direct map (kmalloc) or vmalloc space, not on a stack, and aligned as the
 * device needs.
 */
static bool nvme_lm_media_buf_ok(const struct nvme_lm_media *m, void *buf,
				 unsigned int len)
{
	struct block_device *bdev = nvme_lm_media_bdev(m);
	void *last = (u8 *)buf + len - 1;

	if (!buf || (unsigned long)buf & bdev_dma_alignment(bdev) ||
	    object_is_on_stack(buf))
		return false;
	if (is_vmalloc_addr(buf))
		return is_vmalloc_addr(last);
	return virt_addr_valid(buf) && virt_addr_valid(last);
}

/* Checks one I/O of a batch. Return: 0, -EINVAL or -ERANGE. */
static int nvme_lm_media_check(const struct nvme_lm_media *m,
			       const struct nvme_lm_media_io *io)
{
	u64 bytes = (u64)io->nlb << m->lbads;

	switch (io->op) {
	case NVME_LM_MEDIA_READ:
	case NVME_LM_MEDIA_WRITE:
		if (!io->nlb || bytes > NVME_LM_MEDIA_MAX_BYTES ||
		    !nvme_lm_media_buf_ok(m, io->buf, bytes))
			return -EINVAL;
		break;
	case NVME_LM_MEDIA_WRITE_ZEROES:
		if (io->buf)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (!io->nlb)
		return -EINVAL;
	if (io->slba >= m->nsze || io->nlb > m->nsze - io->slba)
		return -ERANGE;
	return 0;
}

/*
 * Drops a reference to @b's pending count; the last one completes the batch
 * and lets its claim close. @b may be freed as soon as it is completed.
 */
static void nvme_lm_media_batch_put(struct nvme_lm_media_batch *b)
{
	struct nvme_lm_media *m = b->m;

	if (!atomic_dec_and_test(&b->pending))
		return;
	complete(&b->done);
	if (atomic_dec_and_test(&m->inflight))
		wake_up_var(&m->inflight);
}

static void nvme_lm_media_end_io(struct bio *bio)
{
	struct nvme_lm_media_req *r = bio->bi_private;

	if (bio->bi_status)
		cmpxchg(&r->status, 0, blk_status_to_errno(bio->bi_status));
	bio_put(bio);
	nvme_lm_media_batch_put(r->batch);
}

static void nvme_lm_media_submit_bio(struct nvme_lm_media_req *r,
				     struct bio *bio)
{
	bio->bi_private = r;
	bio->bi_end_io = nvme_lm_media_end_io;
	atomic_inc(&r->batch->pending);
	submit_bio(bio);
}

/* Submits the bios of a read or a write: one for linear memory. */
static void nvme_lm_media_submit_rw(struct nvme_lm_media *m,
				    struct nvme_lm_media_io *io,
				    struct nvme_lm_media_req *r)
{
	struct block_device *bdev = nvme_lm_media_bdev(m);
	blk_opf_t opf = io->op == NVME_LM_MEDIA_READ ? REQ_OP_READ :
						       REQ_OP_WRITE;
	sector_t sector = io->slba << (m->lbads - SECTOR_SHIFT);
	unsigned int len = io->nlb << m->lbads, piece;
	u8 *p = io->buf;
	struct bio *bio;

	if (!is_vmalloc_addr(p)) {
		bio = bio_alloc(bdev, 1, opf, GFP_NOIO);
		bio->bi_iter.bi_sector = sector;
		bio_add_virt_nofail(bio, p, len);
		nvme_lm_media_submit_bio(r, bio);
		return;
	}
	/* Pieces of whole blocks, each within BIO_MAX_VECS pages. */
	while (len) {
		piece = min_t(unsigned int, len,
			      round_down(NVME_LM_MEDIA_VMALLOC_PIECE,
					 1U << m->lbads));
		bio = bio_alloc(bdev, bio_add_max_vecs(p, piece), opf,
				GFP_NOIO);
		bio->bi_iter.bi_sector = sector;
		/* Cannot fail: the bio has a vector for every page. */
		if (WARN_ON_ONCE(!bio_add_vmalloc(bio, p, piece))) {
			bio->bi_status = BLK_STS_RESOURCE;
			atomic_inc(&r->batch->pending);
			bio->bi_private = r;
			nvme_lm_media_end_io(bio);
			return;
		}
		nvme_lm_media_submit_bio(r, bio);
		p += piece;
		sector += piece >> SECTOR_SHIFT;
		len -= piece;
	}
}

/*
 * Submits the bios of a write-zeroes: Write Zeroes commands if the device
 * has them, else writes of the zero folio (both by the block layer), in
 * chunks whose size fits a bio. Chained bios complete into the last one.
 */
static void nvme_lm_media_submit_zeroes(struct nvme_lm_media *m,
					struct nvme_lm_media_io *io,
					struct nvme_lm_media_req *r)
{
	struct block_device *bdev = nvme_lm_media_bdev(m);
	sector_t sector = io->slba << (m->lbads - SECTOR_SHIFT);
	sector_t left = (sector_t)io->nlb << (m->lbads - SECTOR_SHIFT);

	while (left) {
		sector_t n = min_t(sector_t, left, NVME_LM_MEDIA_ZERO_CHUNK);
		struct bio *bio = NULL;
		int ret;

		ret = __blkdev_issue_zeroout(bdev, sector, n, GFP_NOIO, &bio,
					     BLKDEV_ZERO_NOUNMAP);
		if (ret) {
			/* Refused before any bio of this chunk was made. */
			cmpxchg(&r->status, 0, ret);
			return;
		}
		if (bio)
			nvme_lm_media_submit_bio(r, bio);
		sector += n;
		left -= n;
	}
}

/**
 * nvme_lm_media_submit() - start a batch of I/Os concurrently on the PF
 * @m: the claim
 * @io: the I/Os
 * @n: their number, at most NVME_LM_MEDIA_MAX_BATCH
 *
 * Checks every I/O first: a range beyond the namespace fails with -ERANGE,
 * a bad size or operation, or a buffer that is not kmalloc or vmalloc
 * memory aligned for the device's DMA (a stack buffer, say), with -EINVAL;
 * if any fails its check, nothing is submitted and the others get
 * -ECANCELED. Otherwise submits all of them as bios at once (the queue
 * depth is the batch) and returns without waiting: the buffers belong to
 * the batch until nvme_lm_media_wait() returns, and @io itself may go
 * (the batch keeps what it needs). Reads and writes take kernel memory,
 * linear (kmalloc) or vmalloc. Writes are not durable before
 * nvme_lm_media_flush().
 *
 * Context: process context, may sleep.
 * Return: the batch, for nvme_lm_media_wait() (exactly once), or an ERR_PTR
 * of the first failed check in @io's order, -ENODEV if the PF or the
 * namespace is gone, -ENOMEM; on error every io->status is set and nothing
 * was submitted.
 */
struct nvme_lm_media_batch *nvme_lm_media_submit(struct nvme_lm_media *m,
						 struct nvme_lm_media_io *io,
						 unsigned int n)
{
	struct nvme_lm_media_batch *b;
	struct blk_plug plug;
	unsigned int i;
	int ret = 0;

	if (n > NVME_LM_MEDIA_MAX_BATCH) {
		for (i = 0; i < n; i++)
			io[i].status = -EINVAL;
		return ERR_PTR(-EINVAL);
	}
	for (i = 0; i < n; i++) {
		io[i].status = nvme_lm_media_check(m, &io[i]);
		if (io[i].status && !ret)
			ret = io[i].status;
	}
	if (!ret)
		ret = nvme_lm_media_usable(m);
	b = ret ? NULL : kzalloc(struct_size(b, req, n), GFP_KERNEL);
	if (!ret && !b)
		ret = -ENOMEM;
	if (ret) {
		for (i = 0; i < n; i++)
			if (!io[i].status)
				io[i].status = ret == -ENODEV || ret == -ENOMEM ?
					       ret : -ECANCELED;
		return ERR_PTR(ret);
	}

	b->m = m;
	b->n = n;
	atomic_set(&b->pending, 1);	/* the submitter's */
	init_completion(&b->done);
	atomic_inc(&m->inflight);
	blk_start_plug(&plug);
	for (i = 0; i < n; i++) {
		struct nvme_lm_media_req *r = &b->req[i];

		r->batch = b;
		r->op = io[i].op;
		r->buf = io[i].buf;
		r->len = r->buf ? io[i].nlb << m->lbads : 0;
		if (io[i].op == NVME_LM_MEDIA_WRITE_ZEROES)
			nvme_lm_media_submit_zeroes(m, &io[i], r);
		else
			nvme_lm_media_submit_rw(m, &io[i], r);
	}
	blk_finish_plug(&plug);
	nvme_lm_media_batch_put(b);
	return b;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_submit, NVME_LM_USERS);

/**
 * nvme_lm_media_wait() - wait for a batch to complete and free it
 * @b: a batch from nvme_lm_media_submit()
 * @io: NULL, or the I/Os it was submitted with, to receive their status
 *
 * Context: process context, may sleep.
 * Return: 0 if all succeeded, else the errno of the first I/O (in
 * submission order) that failed.
 */
int nvme_lm_media_wait(struct nvme_lm_media_batch *b,
		       struct nvme_lm_media_io *io)
{
	unsigned int i;
	int ret = 0;

	wait_for_completion_io(&b->done);
	for (i = 0; i < b->n; i++) {
		struct nvme_lm_media_req *r = &b->req[i];
		int status = READ_ONCE(r->status);

		if (io)
			io[i].status = status;
		if (status && !ret)
			ret = status;
		if (r->op == NVME_LM_MEDIA_READ && is_vmalloc_addr(r->buf))
			invalidate_kernel_vmap_range(r->buf, r->len);
	}
	kfree(b);
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_wait, NVME_LM_USERS);

/**
 * nvme_lm_media_rw() - run a batch of I/Os concurrently on the PF, wait for all
 * @m: the claim
 * @io: the I/Os
 * @n: their number, at most NVME_LM_MEDIA_MAX_BATCH
 *
 * nvme_lm_media_submit() and nvme_lm_media_wait(), which see.
 *
 * Context: process context, may sleep.
 * Return: 0 if all succeeded, else the errno of the first I/O (in @io's
 * order) that failed or of the failed submission. Every io->status is set.
 */
int nvme_lm_media_rw(struct nvme_lm_media *m, struct nvme_lm_media_io *io,
		     unsigned int n)
{
	struct nvme_lm_media_batch *b = nvme_lm_media_submit(m, io, n);

	if (IS_ERR(b))
		return PTR_ERR(b);
	return nvme_lm_media_wait(b, io);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_rw, NVME_LM_USERS);

/**
 * nvme_lm_media_flush() - make the writes through a claim durable
 * @m: the claim
 *
 * Context: process context, may sleep.
 * Return: 0, -ENODEV if the PF or the namespace is gone, or the flush's
 * errno.
 */
int nvme_lm_media_flush(struct nvme_lm_media *m)
{
	int ret = nvme_lm_media_usable(m);

	if (ret)
		return ret;
	ret = blkdev_issue_flush(nvme_lm_media_bdev(m));
	if (ret)
		nvme_lm_media_err(m->lm, m->nsid, ret, "flush failed");
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_media_flush, NVME_LM_USERS);
