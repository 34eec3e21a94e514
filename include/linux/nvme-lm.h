/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NVMe Host Managed Live Migration (NVMe Base 2.1) for SR-IOV virtual
 * functions: a narrow, typed service of nvme-pci that lets the VF's own
 * VFIO variant driver migrate that VF's secondary controller, and nothing
 * else. Every command runs on the parent PF's admin queue and names the
 * VF's secondary controller, which the service resolves itself from the
 * Secondary Controller List; no caller ever supplies a controller ID, an
 * opcode or a DMA address.
 *
 * Lifetime: a handle may only be acquired by the driver bound to the VF.
 * That driver's remove() releases it (nvme_lm_put()) or detaches it
 * (nvme_lm_detach()) and releases it later, when its own data goes. A PF
 * that is unbound (nvme_remove()) first releases the drivers of the VFs
 * whose handles are still attached, one at a time, and waits for a VF
 * probe that is taking a handle; the handle keeps a reference on the PF's
 * controller. Operations after a PF reset, while it is going away or
 * after detaching fail with an errno; they never touch a freed queue.
 */
#ifndef _LINUX_NVME_LM_H
#define _LINUX_NVME_LM_H

#include <linux/err.h>
#include <linux/sizes.h>
#include <linux/types.h>

struct pci_dev;
struct nvme_lm;
struct nvme_lm_cdq;

/* Suspend types (Migration Send, Suspend, STYPE). */
enum nvme_lm_suspend_type {
	NVME_LM_SUSPEND_NOTIFY	= 0,	/* notification only */
	NVME_LM_SUSPEND_FULL	= 1,	/* stop, drain, no DMA, no interrupts */
};

/* Sequence indicator of Set Controller State. */
enum nvme_lm_seq {
	NVME_LM_SEQ_MIDDLE	= 0,
	NVME_LM_SEQ_FIRST	= 1,
	NVME_LM_SEQ_LAST	= 2,
	NVME_LM_SEQ_ONLY	= 3,
};

/* Events of a Controller Data Queue, delivered to its owner. */
enum nvme_lm_cdq_event {
	NVME_LM_CDQ_TAIL_TRIGGER	= 0,	/* the tail reached the trigger */
	NVME_LM_CDQ_FULL		= 1,	/* full: logging stopped */
};

/**
 * typedef nvme_lm_cdq_notify_t - Controller Data Queue event callback
 * @data: the pointer given to nvme_lm_cdq_create()
 * @event: what happened
 *
 * Called from a work item (process context): may sleep and call the
 * service for the queue, but not nvme_lm_cdq_destroy(), which waits for it.
 * Never runs concurrently with itself for one queue, nor after
 * nvme_lm_cdq_destroy() returns. Events that come while a call is pending
 * are delivered once. At most one tail-trigger event per nvme_lm_cdq_arm().
 */
typedef void (*nvme_lm_cdq_notify_t)(void *data, enum nvme_lm_cdq_event event);

/**
 * struct nvme_lm_identity - what a migration destination must match
 * @model: Model Number of the subsystem's controllers (space padded)
 * @firmware: Firmware Revision (space padded)
 * @subnqn: NVM Subsystem NQN, NUL terminated
 * @io_queues: I/O queue pairs the VF's secondary controller has resources for
 * @vectors: interrupt vectors the secondary controller has resources for
 * @mqes: CAP.MQES of the VF's controller (0's based)
 * @contiguous_only: CAP.CQR of the VF's controller
 */
struct nvme_lm_identity {
	char model[40];
	char firmware[8];
	char subnqn[256];
	u16 io_queues;
	u16 vectors;
	u16 mqes;
	bool contiguous_only;
};

/**
 * struct nvme_lm_ns - a namespace attached to the VF's controller
 * @nsid: Namespace ID
 * @nsze: size in logical blocks (NSZE)
 * @lbads: LBA data size of the format in use, as a power of two
 * @ms: metadata bytes per LBA of the format in use
 * @nguid: Namespace Globally Unique Identifier (zero if none)
 * @eui64: IEEE Extended Unique Identifier (zero if none)
 */
struct nvme_lm_ns {
	u32 nsid;
	u64 nsze;
	u8 lbads;
	u16 ms;
	u8 nguid[16];
	u8 eui64[8];
};

/* Size of one User Data Migration Queue entry. */
#define NVME_LM_CDQ_ENTRY_SIZE	32

/*
 * Media migration: namespace I/O through the PF (drivers/nvme/host/lm_media.c).
 * A claim (struct nvme_lm_media) holds the PF's block device for a namespace
 * of the VF exclusively; its user closes every claim before releasing the
 * handle (nvme_lm_put() or nvme_lm_detach()).
 */
struct nvme_lm_media;
struct nvme_lm_media_batch;

/* Operations of a media I/O. */
enum nvme_lm_media_op {
	NVME_LM_MEDIA_READ		= 0,
	NVME_LM_MEDIA_WRITE		= 1,
	NVME_LM_MEDIA_WRITE_ZEROES	= 2,
};

/* The longest read or write of one media I/O, in bytes. */
#define NVME_LM_MEDIA_MAX_BYTES	SZ_1M
/* The most I/Os of one batch (nvme_lm_media_submit(), nvme_lm_media_rw()). */
#define NVME_LM_MEDIA_MAX_BATCH	256

/**
 * struct nvme_lm_media_io - one I/O of a batch
 * @op: the operation (enum nvme_lm_media_op)
 * @slba: first logical block
 * @nlb: number of logical blocks (1-based); for a read or a write at most
 *	NVME_LM_MEDIA_MAX_BYTES bytes, a write-zeroes may be longer
 * @buf: kernel memory (kmalloc or vmalloc) of @nlb blocks for a read or a
 *	write, not on the stack; NULL for a write-zeroes
 * @status: out: 0 or a negative errno
 */
struct nvme_lm_media_io {
	u8 op;
	u64 slba;
	u32 nlb;
	void *buf;
	int status;
};

#if IS_ENABLED(CONFIG_NVME_HOST_LM)
struct nvme_lm *nvme_lm_get(struct pci_dev *vf);
void nvme_lm_put(struct nvme_lm *lm);
void nvme_lm_detach(struct nvme_lm *lm);
u16 nvme_lm_cntlid(const struct nvme_lm *lm);
u32 nvme_lm_max_transfer(const struct nvme_lm *lm);
int nvme_lm_state_formats(struct nvme_lm *lm, void *buf, size_t len);
int nvme_lm_identify_ctrl(struct nvme_lm *lm, void *buf, size_t len);
int nvme_lm_identity(struct nvme_lm *lm, struct nvme_lm_identity *id);
int nvme_lm_namespaces(struct nvme_lm *lm, struct nvme_lm_ns *ns,
		       unsigned int max);
int nvme_lm_suspend(struct nvme_lm *lm, enum nvme_lm_suspend_type type);
int nvme_lm_resume(struct nvme_lm *lm);
int nvme_lm_get_state(struct nvme_lm *lm, u8 csvi, u8 csuuidi, u64 offset,
		      void *buf, u32 len, bool *suspended);
int nvme_lm_set_state(struct nvme_lm *lm, enum nvme_lm_seq seq, u8 csvi,
		      u8 csuuidi, u64 offset, const void *buf, u32 len);
struct nvme_lm_cdq *nvme_lm_cdq_create(struct nvme_lm *lm, u32 nr_entries,
				       nvme_lm_cdq_notify_t notify,
				       void *data);
void nvme_lm_cdq_destroy(struct nvme_lm_cdq *cdq);
int nvme_lm_cdq_log(struct nvme_lm_cdq *cdq, bool start);
int nvme_lm_cdq_read(struct nvme_lm_cdq *cdq, void *buf, u32 max_entries,
		     bool *overflow);
int nvme_lm_cdq_arm(struct nvme_lm_cdq *cdq, u32 entries_ahead);
int nvme_lm_track_start(struct nvme_lm *lm, const void *data, u32 len,
			u8 *granularity);
int nvme_lm_track_stop(struct nvme_lm *lm);
int nvme_lm_track_receive(struct nvme_lm *lm, void *buf, u32 len);
struct nvme_lm_media *nvme_lm_media_open(struct nvme_lm *lm, u32 nsid);
void nvme_lm_media_close(struct nvme_lm_media *m);
u64 nvme_lm_media_nsze(const struct nvme_lm_media *m);
u8 nvme_lm_media_lbads(const struct nvme_lm_media *m);
struct nvme_lm_media_batch *nvme_lm_media_submit(struct nvme_lm_media *m,
						 struct nvme_lm_media_io *io,
						 unsigned int n);
int nvme_lm_media_wait(struct nvme_lm_media_batch *b,
		       struct nvme_lm_media_io *io);
int nvme_lm_media_rw(struct nvme_lm_media *m, struct nvme_lm_media_io *io,
		     unsigned int n);
int nvme_lm_media_flush(struct nvme_lm_media *m);
#else
static inline struct nvme_lm *nvme_lm_get(struct pci_dev *vf)
{
	return ERR_PTR(-EOPNOTSUPP);
}

static inline void nvme_lm_put(struct nvme_lm *lm) { }
static inline void nvme_lm_detach(struct nvme_lm *lm) { }
#endif

#endif /* _LINUX_NVME_LM_H */
