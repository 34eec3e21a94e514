// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe Host Managed Live Migration (NVMe Base 2.1) service for the VFIO
 * variant driver of an SR-IOV virtual function.
 *
 * The variant driver bound to a VF acquires a handle for that VF; every
 * operation on the handle becomes one admin command on the PF's admin
 * queue that names the VF's secondary controller, looked up here from the
 * Secondary Controller List by VF number. Callers pass kernel buffers and
 * typed arguments only: no opcode, controller ID or DMA address. The
 * Controller Data Queue ring is allocated and DMA-mapped here, on the PF,
 * and stays kernel memory.
 *
 * Locking: nvme_lm.lock (a mutex) serializes the commands of one handle and
 * the consumption of its CDQ. nvme_lm_list_lock (a mutex) protects the list
 * of handles; nvme_lm_cdq_lock (a spinlock, taken from the completion
 * interrupt) protects the list of CDQs that events are matched against and
 * the state events change (armed trigger, queue-full events), and
 * which queues a disabled PF controller took away. Order: nvme_lm.lock,
 * then nvme_lm_cdq_lock.
 *
 * A PF controller that is disabled (reset, timeout recovery, suspend)
 * deletes its CDQs, and gives their IDs to the next ones created: nvme-pci
 * tells the service (nvme_lm_pf_disable()), which marks them lost. A lost
 * queue sends no command again; its owner's next read fails with -ENOENT.
 *
 * Timeouts: every command has the admin timeout of nvme-core
 * (nvme_core.admin_timeout, 60 s by default). A Suspend completes only when
 * the VF's in-flight commands have, so it can take that long.
 */

#include <linux/bitfield.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/moduleparam.h>
#include <linux/nvme-lm.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/unaligned.h>
#include "nvme.h"
#include "lm.h"

/* Identify Controller: Max PRP entries of a CDQ command's PRP list. */
#define NVME_LM_ID_MCDQPC		586
/*
 * NVM Command Set Identify Controller (CNS 06h, CSI 00h): LBA Migration
 * Queue Format, the format of the entries a User Data Migration Queue
 * posts; 0h is LBA Migration Queue Entry Type 0, the only one known here.
 */
#define NVME_LM_ID_NVM_LBAMQF		24
#define NVME_LM_LBAMQF_TYPE_0		0
/* UDMQ entry, byte 31: bit 0 phase tag, bits 3:1 ESA (7: queue full). */
#define NVME_LM_CDQ_ATTR		(NVME_LM_CDQ_ENTRY_SIZE - 1)
#define NVME_LM_CDQ_ESA			GENMASK(3, 1)
#define NVME_LM_CDQ_ESA_FULL		7
#define NVME_LM_SECONDARY_ENTRY_SIZE	32
#define NVME_LM_SECONDARY_MAX		127
/* CAP.CQR: the controller requires physically contiguous queues. */
#define NVME_LM_CAP_CQR			BIT_ULL(16)

/**
 * struct nvme_lm - a migration handle for one VF
 * @vf: the VF, whose driver holds the handle
 * @ctrl: the PF's controller (a reference is held)
 * @entry: in nvme_lm_handles
 * @cntlid: the VF's secondary controller ID
 * @mcdqpc: the PF's limit of pages in a PRP-list CDQ
 * @cap: the VF's CAP register, read once when the handle was taken
 * @lock: serializes this handle's commands and its CDQ's consumption
 * @cdq: the VF's User Data Migration Queue, if created
 * @detached: under @lock, the VF's driver let the PF go (nvme_lm_detach())
 */
struct nvme_lm {
	struct pci_dev *vf;
	struct nvme_ctrl *ctrl;
	struct list_head entry;
	u16 cntlid;
	u16 mcdqpc;
	u64 cap;
	struct mutex lock; /* serializes commands and CDQ consumption */
	struct nvme_lm_cdq *cdq;
	bool detached;
};

/**
 * struct nvme_lm_cdq - a User Data Migration Queue, kernel-owned
 * @lm: its handle
 * @entry: in nvme_lm_cdqs, under nvme_lm_cdq_lock
 * @cdqid: the controller's ID for it
 * @nr_entries: ring size in entries
 * @head: next entry to consume (under @lm->lock)
 * @phase: phase tag of new entries at @head (under @lm->lock)
 * @armed: the tail-pointer trigger is armed and its event not yet
 *	delivered (under nvme_lm_cdq_lock)
 * @tpt: the slot it is armed at (under nvme_lm_cdq_lock)
 * @full_events: queue-full events received (under nvme_lm_cdq_lock)
 * @full_entries: queue-full (ESA 7) entries consumed (under @lm->lock)
 * @full_reported: queue-full conditions reported as overflow (under
 *	@lm->lock)
 * @lost: the PF controller was disabled since the queue was created: the
 *	controller has deleted it (under nvme_lm_cdq_lock)
 * @notify: owner's event callback, may be NULL
 * @data: its argument
 * @events: events to deliver, a bit per enum nvme_lm_cdq_event (under
 *	nvme_lm_cdq_lock)
 * @event_work: delivers @events to @notify in process context
 * @npages: pages of ring memory
 * @pages: their kernel addresses
 * @pages_dma: their bus addresses on the PF
 * @prp_list: PRP list of @pages (if more than one)
 * @prp_list_dma: its bus address
 */
struct nvme_lm_cdq {
	struct nvme_lm *lm;
	struct list_head entry;
	u16 cdqid;
	u32 nr_entries;
	u32 head;
	u8 phase;
	bool armed;
	u32 tpt;
	u64 full_events;
	u64 full_entries;
	u64 full_reported;
	bool lost;
	nvme_lm_cdq_notify_t notify;
	void *data;
	unsigned long events;
	struct work_struct event_work;
	u32 npages;
	void **pages;
	dma_addr_t *pages_dma;
	__le64 *prp_list;
	dma_addr_t prp_list_dma;
};

static LIST_HEAD(nvme_lm_handles);
static DEFINE_MUTEX(nvme_lm_list_lock);
static LIST_HEAD(nvme_lm_cdqs);
static DEFINE_SPINLOCK(nvme_lm_cdq_lock);
/* PF controllers disabled so far, any PF (under nvme_lm_cdq_lock). */
static u64 nvme_lm_pf_disables;

/**
 * nvme_lm_errno() - the errno for an NVMe status of an HMLM command
 * @status: the NVMe status, (SCT << 8) | SC, possibly with DNR and More
 *
 * Return: a negative errno.
 */
static int nvme_lm_errno(u16 status)
{
	switch (status & NVME_SCT_SC_MASK) {
	case NVME_SC_INVALID_FIELD:
	case NVME_SC_CTRL_NOT_SUSPENDED:
		return -EINVAL;
	case NVME_SC_CMD_SEQ_ERROR:
		return -EBUSY;
	case NVME_SC_CTRL_ID_INVALID:
		return -ENODEV;
	case NVME_SC_INVALID_CDQ:
		return -ENOENT;
	case NVME_SC_NOT_ENOUGH_RESOURCES:
	case NVME_SC_CDQ_FULL:
		return -ENOSPC;
	case NVME_SC_CTRL_SUSPENDED:
		return -EALREADY;
	default:
		return -EIO;
	}
}

/* Fields of a Secondary Controller Entry (Identify CNS 15h). */
#define NVME_LM_SEC_SCID	0
#define NVME_LM_SEC_VFN		8
#define NVME_LM_SEC_NVQ		10
#define NVME_LM_SEC_NVI		12

/**
 * nvme_lm_secondary_entry() - find an entry of a Secondary Controller List
 * @list: the list (Identify CNS 15h)
 * @len: its length in bytes
 * @field: offset of a 16-bit field of an entry (NVME_LM_SEC_*)
 * @val: the value that field must hold
 *
 * Return: the first entry whose @field holds @val, or NULL.
 */
static const u8 *nvme_lm_secondary_entry(const u8 *list, size_t len,
					 unsigned int field, u16 val)
{
	unsigned int i, nr;

	if (!len)
		return NULL;
	nr = min_t(unsigned int, list[0], NVME_LM_SECONDARY_MAX);
	for (i = 0; i < nr; i++) {
		const u8 *e = list + NVME_LM_SECONDARY_ENTRY_SIZE * (i + 1);

		if (e + NVME_LM_SECONDARY_ENTRY_SIZE > list + len)
			break;
		if (get_unaligned_le16(e + field) == val)
			return e;
	}
	return NULL;
}

/* Most pages of a Secondary Controller List the service reads. */
#define NVME_LM_SECONDARY_PAGES		1024

/**
 * nvme_lm_secondary_next() - where the next page of a Secondary Controller
 * List starts
 * @list: the page just read (Identify CNS 15h), NVME_IDENTIFY_DATA_SIZE bytes
 * @next: the CNTID it was read with; advanced past its last entry
 *
 * Identify CNS 15h returns up to 127 entries whose controller IDs are at
 * least CDW10.CNTID, in ascending order. A page need not be full while more
 * follow, so only an empty page ends the list.
 *
 * Return: true if another page may hold more entries.
 */
static bool nvme_lm_secondary_next(const u8 *list, u32 *next)
{
	unsigned int nr = min_t(unsigned int, list[0], NVME_LM_SECONDARY_MAX);
	u16 last;

	if (!nr)
		return false;
	last = get_unaligned_le16(list + NVME_LM_SECONDARY_ENTRY_SIZE * nr +
				  NVME_LM_SEC_SCID);
	/* A page must move forward, or it would be read forever. */
	if (last < *next || last == U16_MAX)
		return false;
	*next = last + 1;
	return true;
}

static int nvme_lm_submit(struct nvme_lm *lm, struct nvme_command *c,
			  void *buf, unsigned int len, u32 *dw0,
			  const char *what)
{
	union nvme_result res = {};
	int ret;

	if (lm->detached) {
		dev_err_ratelimited(&lm->vf->dev, "%s: the VF's driver is gone\n",
				    what);
		return -ENODEV;
	}
	if (nvme_ctrl_state(lm->ctrl) != NVME_CTRL_LIVE) {
		dev_err(&lm->vf->dev, "%s: PF controller %s is not live\n",
			what, dev_name(lm->ctrl->device));
		return -ENODEV;
	}

	ret = __nvme_submit_sync_cmd(lm->ctrl->admin_q, c, &res, buf, len,
				     NVME_QID_ANY, 0);
	/* A VF's user can make commands fail at will: rate-limited. */
	if (ret < 0) {
		dev_err_ratelimited(&lm->vf->dev, "%s: %pe\n", what, ERR_PTR(ret));
		return ret;
	}
	if (ret > 0) {
		dev_err_ratelimited(&lm->vf->dev, "%s: NVMe status %#x\n", what,
				    ret);
		return nvme_lm_errno(ret);
	}
	if (dw0)
		*dw0 = le32_to_cpu(res.u32);
	return 0;
}

/* One command of the handle, serialized with its others. */
static int nvme_lm_cmd(struct nvme_lm *lm, struct nvme_command *c, void *buf,
		       unsigned int len, u32 *dw0, const char *what)
{
	int ret;

	mutex_lock(&lm->lock);
	ret = nvme_lm_submit(lm, c, buf, len, dw0, what);
	mutex_unlock(&lm->lock);
	return ret;
}

static int nvme_lm_identify_ns(struct nvme_lm *lm, u8 cns, u32 nsid,
			       u16 cntid, void *buf)
{
	struct nvme_command c = { };

	c.identify.opcode = nvme_admin_identify;
	c.identify.cns = cns;
	c.identify.nsid = cpu_to_le32(nsid);
	c.identify.ctrlid = cpu_to_le16(cntid);
	return nvme_lm_submit(lm, &c, buf, NVME_IDENTIFY_DATA_SIZE, NULL,
			      "Identify");
}

static int nvme_lm_identify(struct nvme_lm *lm, u8 cns, void *buf)
{
	return nvme_lm_identify_ns(lm, cns, 0, 0, buf);
}

/**
 * nvme_lm_secondary_lookup() - find an entry of the PF's Secondary
 * Controller List, reading it page by page
 * @lm: the handle; its lock held, or the handle not yet shared
 * @list: a buffer of NVME_IDENTIFY_DATA_SIZE bytes
 * @field: offset of a 16-bit field of an entry (NVME_LM_SEC_*)
 * @val: the value that field must hold
 * @entry: where to copy the entry (NVME_LM_SECONDARY_ENTRY_SIZE bytes)
 *
 * Return: 0, -ENOENT if no entry matches, or a command's error.
 */
static int nvme_lm_secondary_lookup(struct nvme_lm *lm, u8 *list,
				    unsigned int field, u16 val, u8 *entry)
{
	unsigned int page;
	u32 next = 0;
	int ret;

	for (page = 0; page < NVME_LM_SECONDARY_PAGES; page++) {
		const u8 *e;

		ret = nvme_lm_identify_ns(lm, NVME_ID_CNS_SCNDRY_CTRL_LIST, 0,
					  next, list);
		if (ret)
			return ret;
		e = nvme_lm_secondary_entry(list, NVME_IDENTIFY_DATA_SIZE,
					    field, val);
		if (e) {
			memcpy(entry, e, NVME_LM_SECONDARY_ENTRY_SIZE);
			return 0;
		}
		if (!nvme_lm_secondary_next(list, &next))
			break;
	}
	return -ENOENT;
}

/* Identify @cns of the PF into a caller's buffer of @len bytes, locked. */
static int nvme_lm_identify_buf(struct nvme_lm *lm, u8 cns, void *buf,
				size_t len)
{
	int ret;

	if (len < NVME_IDENTIFY_DATA_SIZE)
		return -EINVAL;
	mutex_lock(&lm->lock);
	ret = nvme_lm_identify(lm, cns, buf);
	mutex_unlock(&lm->lock);
	return ret;
}

/*
 * Reads the VF's CAP register once, when the handle is taken: at probe,
 * before any user owns the VF, so memory decoding may be switched on for
 * the read (a VF whose user has not enabled it, or that its VMM holds
 * reset, would otherwise read as nothing). CAP is constant.
 */
static int nvme_lm_read_cap(struct nvme_lm *lm)
{
	void __iomem *regs;
	u16 cmd;

	regs = pci_iomap(lm->vf, 0, NVME_REG_CAP + sizeof(lm->cap));
	if (!regs) {
		dev_err(&lm->vf->dev, "cannot map the VF's registers\n");
		return -ENODEV;
	}
	pci_read_config_word(lm->vf, PCI_COMMAND, &cmd);
	if (!(cmd & PCI_COMMAND_MEMORY))
		pci_write_config_word(lm->vf, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
	lm->cap = lo_hi_readq(regs + NVME_REG_CAP);
	if (!(cmd & PCI_COMMAND_MEMORY))
		pci_write_config_word(lm->vf, PCI_COMMAND, cmd);
	pci_iounmap(lm->vf, regs);
	if (lm->cap == ~0ULL || !lm->cap) {
		dev_err(&lm->vf->dev, "the VF's CAP register reads %#llx\n", lm->cap);
		return -ENODEV;
	}
	return 0;
}

#if IS_ENABLED(CONFIG_NVME_HOST_LM_SELFTEST)
static unsigned int lm_get_delay_ms;
module_param(lm_get_delay_ms, uint, 0644);
MODULE_PARM_DESC(lm_get_delay_ms,
		 "test only: sleep in nvme_lm_get() once the PF is taken (race tests)");

static unsigned int lm_cdq_create_delay_ms;
module_param(lm_cdq_create_delay_ms, uint, 0644);
MODULE_PARM_DESC(lm_cdq_create_delay_ms,
		 "test only: sleep in nvme_lm_cdq_create() before the command (race tests)");

static void nvme_lm_test_delay(const unsigned int *param)
{
	unsigned int ms = READ_ONCE(*param);

	if (ms)
		msleep(ms);
}

static void nvme_lm_get_test_delay(void)
{
	nvme_lm_test_delay(&lm_get_delay_ms);
}

static void nvme_lm_cdq_create_test_delay(void)
{
	nvme_lm_test_delay(&lm_cdq_create_delay_ms);
}

static bool lm_cdq_drop_full_events;
module_param(lm_cdq_drop_full_events, bool, 0644);
MODULE_PARM_DESC(lm_cdq_drop_full_events,
		 "test only: ignore CDQ queue-full events (as if lost)");

static bool nvme_lm_test_drop_full(void)
{
	return READ_ONCE(lm_cdq_drop_full_events);
}
#else
static void nvme_lm_get_test_delay(void) { }
static void nvme_lm_cdq_create_test_delay(void) { }
static bool nvme_lm_test_drop_full(void) { return false; }
#endif

/**
 * nvme_lm_get() - acquire the migration handle of a VF
 * @vf: the VF; the caller must be its bound driver
 *
 * Checks that @vf's PF is bound to nvme-pci and supports Host Managed Live
 * Migration, and resolves the VF's secondary controller ID.
 *
 * Return: the handle, or an ERR_PTR: -EINVAL if @vf is not a VF,
 * -ENODEV if its PF is not bound to nvme-pci or lists no controller for it,
 * -EOPNOTSUPP if the PF lacks HMLM, -ENOMEM, or a command's error.
 */
struct nvme_lm *nvme_lm_get(struct pci_dev *vf)
{
	u8 entry[NVME_LM_SECONDARY_ENTRY_SIZE];
	struct nvme_ctrl *ctrl;
	struct nvme_lm *lm;
	u8 *buf;
	int ret;

	if (!vf->is_virtfn)
		return ERR_PTR(-EINVAL);

	lm = kzalloc_obj(*lm, GFP_KERNEL);
	buf = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	if (!lm || !buf) {
		ret = -ENOMEM;
		goto out_free;
	}
	lm->vf = vf;
	mutex_init(&lm->lock);

	/*
	 * The PF's controller and the handle's place on the list are taken
	 * under one lock: nvme_remove() clears the PF's drvdata before
	 * nvme_lm_pf_remove() scans the list under it, so either this finds
	 * no controller, or that finds this handle and waits for this probe
	 * before it releases the VF's driver. The reference keeps the
	 * controller's memory for as long as the handle lives.
	 */
	mutex_lock(&nvme_lm_list_lock);
	ctrl = nvme_pci_pf_ctrl(vf);
	if (!IS_ERR(ctrl)) {
		nvme_get_ctrl(ctrl);
		lm->ctrl = ctrl;
		list_add(&lm->entry, &nvme_lm_handles);
	}
	mutex_unlock(&nvme_lm_list_lock);
	if (IS_ERR(ctrl)) {
		ret = PTR_ERR(ctrl);
		goto out_free;
	}
	nvme_lm_get_test_delay();
	if (!(ctrl->oacs & NVME_CTRL_OACS_HMLM)) {
		ret = -EOPNOTSUPP;
		goto out_put;
	}

	ret = nvme_lm_identify(lm, NVME_ID_CNS_CTRL, buf);
	if (ret)
		goto out_put;
	lm->mcdqpc = get_unaligned_le16(buf + NVME_LM_ID_MCDQPC);

	ret = nvme_lm_secondary_lookup(lm, buf, NVME_LM_SEC_VFN,
				       pci_iov_vf_id(vf) + 1, entry);
	if (ret == -ENOENT) {
		dev_err(&vf->dev, "no secondary controller for VF %d on %s\n",
			pci_iov_vf_id(vf) + 1, dev_name(ctrl->device));
		ret = -ENODEV;
	}
	if (ret)
		goto out_put;
	lm->cntlid = get_unaligned_le16(entry + NVME_LM_SEC_SCID);
	kfree(buf);
	buf = NULL;
	ret = nvme_lm_read_cap(lm);
	if (ret)
		goto out_put;

	pci_dev_get(vf);
	return lm;

out_put:
	mutex_lock(&nvme_lm_list_lock);
	list_del(&lm->entry);
	mutex_unlock(&nvme_lm_list_lock);
	nvme_put_ctrl(ctrl);
out_free:
	kfree(buf);
	kfree(lm);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_get, NVME_LM_USERS);

/**
 * nvme_lm_detach() - let the PF go: the VF's driver is being removed
 * @lm: the handle
 *
 * Takes @lm off the PF's list, so that nvme_lm_pf_remove() no longer waits
 * for it; every later command of @lm fails with -ENODEV. The VF's driver
 * calls this in its remove() when the handle itself may live on (freed by
 * nvme_lm_put() when the last reference to the driver's data goes).
 */
void nvme_lm_detach(struct nvme_lm *lm)
{
	if (IS_ERR_OR_NULL(lm))
		return;
	mutex_lock(&nvme_lm_list_lock);
	list_del_init(&lm->entry);
	mutex_unlock(&nvme_lm_list_lock);
	mutex_lock(&lm->lock);
	lm->detached = true;
	mutex_unlock(&lm->lock);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_detach, NVME_LM_USERS);

/**
 * nvme_lm_put() - release a migration handle
 * @lm: the handle; its CDQ, if any, is destroyed
 *
 * The VF's driver calls this before its remove() returns, or calls
 * nvme_lm_detach() there and this later.
 */
void nvme_lm_put(struct nvme_lm *lm)
{
	if (IS_ERR_OR_NULL(lm))
		return;
	if (lm->cdq)
		nvme_lm_cdq_destroy(lm->cdq);
	mutex_lock(&nvme_lm_list_lock);
	list_del_init(&lm->entry);
	mutex_unlock(&nvme_lm_list_lock);
	nvme_put_ctrl(lm->ctrl);
	pci_dev_put(lm->vf);
	mutex_destroy(&lm->lock);
	kfree(lm);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_put, NVME_LM_USERS);

/**
 * nvme_lm_pf_ctrl() - the PF's controller of a handle
 * @lm: the handle
 *
 * Return: the controller, referenced for as long as @lm lives.
 */
struct nvme_ctrl *nvme_lm_pf_ctrl(const struct nvme_lm *lm)
{
	return lm->ctrl;
}

/**
 * nvme_lm_vf_dev() - the VF's device, for messages
 * @lm: the handle
 *
 * Return: the VF's struct device, referenced for as long as @lm lives.
 */
struct device *nvme_lm_vf_dev(const struct nvme_lm *lm)
{
	return &lm->vf->dev;
}

/**
 * nvme_lm_cntlid() - the VF's secondary controller ID
 * @lm: the handle
 *
 * Return: the controller ID every command of @lm names.
 */
u16 nvme_lm_cntlid(const struct nvme_lm *lm)
{
	return lm->cntlid;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cntlid, NVME_LM_USERS);

/**
 * nvme_lm_max_transfer() - the longest data transfer of one command
 * @lm: the handle
 *
 * The PF's admin queue limit, which nvme core derives from MDTS: a Get or
 * Set Controller State piece longer than this fails.
 *
 * Return: the limit in bytes, at least one controller page.
 */
u32 nvme_lm_max_transfer(const struct nvme_lm *lm)
{
	u64 bytes = (u64)queue_max_hw_sectors(lm->ctrl->admin_q) << SECTOR_SHIFT;

	return clamp_t(u64, bytes, NVME_CTRL_PAGE_SIZE, U32_MAX);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_max_transfer, NVME_LM_USERS);

/**
 * nvme_lm_state_formats() - Supported Controller State Formats
 * @lm: the handle
 * @buf: a kernel buffer (not on the stack)
 * @len: its size, at least NVME_IDENTIFY_DATA_SIZE
 *
 * Reads Identify CNS 20h from the PF, as raw bytes for the caller to parse.
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_state_formats(struct nvme_lm *lm, void *buf, size_t len)
{
	return nvme_lm_identify_buf(lm, NVME_ID_CNS_CTRL_STATE_FORMATS, buf,
				    len);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_state_formats, NVME_LM_USERS);

/**
 * nvme_lm_identity() - what a migration destination must match
 * @lm: the handle
 * @id: filled in on success
 *
 * The model, firmware revision and subsystem NQN are the PF's (its
 * secondary controllers are in the same subsystem); the queue and interrupt
 * resources come from a fresh Secondary Controller List, as they change
 * with Virtualization Management; CAP is the VF's own, read when the handle
 * was taken (it does not depend on whether the VF's user enabled it).
 *
 * Return: 0, -ENOMEM, or a command's error.
 */
int nvme_lm_identity(struct nvme_lm *lm, struct nvme_lm_identity *id)
{
	struct nvme_subsystem *subsys = lm->ctrl->subsys;
	u8 entry[NVME_LM_SECONDARY_ENTRY_SIZE];
	u8 *list;
	u16 nvq;
	u64 cap;
	int ret;

	memset(id, 0, sizeof(*id));
	memcpy(id->model, subsys->model, sizeof(id->model));
	memcpy(id->firmware, subsys->firmware_rev, sizeof(id->firmware));
	strscpy(id->subnqn, subsys->subnqn, sizeof(id->subnqn));

	cap = lm->cap;
	id->mqes = NVME_CAP_MQES(cap);
	id->contiguous_only = cap & NVME_LM_CAP_CQR;

	list = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	mutex_lock(&lm->lock);
	ret = nvme_lm_secondary_lookup(lm, list, NVME_LM_SEC_SCID, lm->cntlid,
				       entry);
	mutex_unlock(&lm->lock);
	if (ret == -ENOENT) {
		dev_err(&lm->vf->dev, "secondary controller %u not listed\n",
			lm->cntlid);
		ret = -ENODEV;
	}
	if (ret)
		goto out;
	/* One VQ resource is the admin queue pair. */
	nvq = get_unaligned_le16(entry + NVME_LM_SEC_NVQ);
	id->io_queues = nvq ? nvq - 1 : 0;
	id->vectors = get_unaligned_le16(entry + NVME_LM_SEC_NVI);
out:
	kfree(list);
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_identity, NVME_LM_USERS);

/* Whether the Controller List @list names controller @cntlid. */
static bool nvme_lm_ctrl_listed(const u8 *list, u16 cntlid)
{
	u16 i, n = min_t(u16, get_unaligned_le16(list),
			 NVME_IDENTIFY_DATA_SIZE / 2 - 1);

	for (i = 1; i <= n; i++)
		if (get_unaligned_le16(list + 2 * i) == cntlid)
			return true;
	return false;
}

/**
 * nvme_lm_ns_attached() - whether a namespace is attached to the VF's
 * controller
 * @lm: the handle
 * @nsid: the namespace
 *
 * Reads the Controller List attached to @nsid (Identify CNS 12h, starting
 * at the VF's controller ID) on the PF's admin queue.
 *
 * Return: 0 if the list names the VF's controller, -ENOENT if not, -ENOMEM,
 * or the command's error.
 */
int nvme_lm_ns_attached(struct nvme_lm *lm, u32 nsid)
{
	u8 *buf;
	int ret;

	buf = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&lm->lock);
	ret = nvme_lm_identify_ns(lm, NVME_ID_CNS_CTRL_NS_LIST, nsid,
				  lm->cntlid, buf);
	mutex_unlock(&lm->lock);
	if (!ret && !nvme_lm_ctrl_listed(buf, lm->cntlid))
		ret = -ENOENT;
	kfree(buf);
	return ret;
}

/* Fills @ns from the Identify Namespace data @id of namespace @nsid. */
static void nvme_lm_ns_fill(struct nvme_lm_ns *ns, u32 nsid,
			    const struct nvme_id_ns *id)
{
	const struct nvme_lbaf *f = &id->lbaf[nvme_lbaf_index(id->flbas)];

	ns->nsid = nsid;
	ns->nsze = le64_to_cpu(id->nsze);
	ns->lbads = f->ds;
	ns->ms = le16_to_cpu(f->ms);
	memcpy(ns->nguid, id->nguid, sizeof(ns->nguid));
	memcpy(ns->eui64, id->eui64, sizeof(ns->eui64));
}

/**
 * nvme_lm_namespaces() - the namespaces attached to the VF's controller
 * @lm: the handle
 * @ns: filled in with up to @max entries, in ascending NSID order
 * @max: room in @ns
 *
 * Asked of the PF, as the VF's controller may be stopped: the subsystem's
 * allocated namespaces (Identify CNS 10h), for each the controllers it is
 * attached to (CNS 12h), and for those attached to the VF's controller
 * their Identify Namespace data (CNS 11h). A migration destination must have
 * the same ones; nothing else is reported.
 *
 * Return: the number of namespaces, -E2BIG if more than @max are attached,
 * -ENOMEM, or a command's error.
 */
int nvme_lm_namespaces(struct nvme_lm *lm, struct nvme_lm_ns *ns,
		       unsigned int max)
{
	u8 *nsids, *buf;
	unsigned int i, n = 0;
	int ret;

	nsids = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	buf = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	if (!nsids || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	mutex_lock(&lm->lock);
	ret = nvme_lm_identify_ns(lm, NVME_ID_CNS_NS_PRESENT_LIST, 0, 0, nsids);
	for (i = 0; !ret && i < NVME_IDENTIFY_DATA_SIZE / 4; i++) {
		u32 nsid = get_unaligned_le32(nsids + 4 * i);

		/* The list is in ascending order, zero padded. */
		if (!nsid || nsid == NVME_NSID_ALL)
			break;
		ret = nvme_lm_identify_ns(lm, NVME_ID_CNS_CTRL_NS_LIST, nsid,
					  lm->cntlid, buf);
		if (ret || !nvme_lm_ctrl_listed(buf, lm->cntlid))
			continue;
		if (n == max) {
			dev_err_ratelimited(&lm->vf->dev,
					    "more than %u namespaces attached\n",
					    max);
			ret = -E2BIG;
			break;
		}
		ret = nvme_lm_identify_ns(lm, NVME_ID_CNS_NS_PRESENT, nsid, 0,
					  buf);
		if (!ret)
			nvme_lm_ns_fill(&ns[n++], nsid, (void *)buf);
	}
	mutex_unlock(&lm->lock);
out:
	kfree(buf);
	kfree(nsids);
	return ret ? ret : n;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_namespaces, NVME_LM_USERS);

/**
 * nvme_lm_suspend() - suspend the VF's controller
 * @lm: the handle
 * @type: notification only, or a full suspend
 *
 * A full suspend returns once every command the controller had fetched has
 * completed; after it the controller does no DMA and raises no interrupt.
 *
 * Suspending a suspended controller succeeds (NVMe 2.1 p. 376).
 *
 * Return: 0; -EALREADY from a controller that answers Controller Suspended
 * instead; another negative errno.
 */
int nvme_lm_suspend(struct nvme_lm *lm, enum nvme_lm_suspend_type type)
{
	struct nvme_command c = { };

	if (type != NVME_LM_SUSPEND_NOTIFY && type != NVME_LM_SUSPEND_FULL)
		return -EINVAL;
	c.common.opcode = nvme_admin_migration_send;
	c.common.cdw11 = cpu_to_le32(lm->cntlid | (u32)type << 16);
	return nvme_lm_cmd(lm, &c, NULL, 0, NULL, "Migration Send: Suspend");
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_suspend, NVME_LM_USERS);

/**
 * nvme_lm_resume() - resume the VF's controller
 * @lm: the handle
 *
 * Return: 0; -EINVAL if it was not suspended; another negative errno.
 */
int nvme_lm_resume(struct nvme_lm *lm)
{
	struct nvme_command c = { };

	c.common.opcode = nvme_admin_migration_send;
	c.common.cdw10 = cpu_to_le32(1);
	c.common.cdw11 = cpu_to_le32(lm->cntlid);
	return nvme_lm_cmd(lm, &c, NULL, 0, NULL, "Migration Send: Resume");
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_resume, NVME_LM_USERS);

/**
 * nvme_lm_get_state() - read the VF controller's state
 * @lm: the handle
 * @csvi: NVMe-defined state version index, 1-based (0: none)
 * @csuuidi: vendor-specific state UUID index, 1-based (0: none)
 * @offset: byte offset into the state, a multiple of 4
 * @buf: a kernel buffer (not on the stack)
 * @len: bytes to read, a non-zero multiple of 4
 * @suspended: set to whether the controller is suspended (may be NULL)
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_get_state(struct nvme_lm *lm, u8 csvi, u8 csuuidi, u64 offset,
		      void *buf, u32 len, bool *suspended)
{
	struct nvme_command c = { };
	u32 dw0 = 0;
	int ret;

	if (!len || len % 4 || offset % 4)
		return -EINVAL;
	c.common.opcode = nvme_admin_migration_recv;
	c.common.cdw10 = cpu_to_le32((u32)csvi << 16);
	c.common.cdw11 = cpu_to_le32(lm->cntlid | (u32)csuuidi << 16);
	c.common.cdw12 = cpu_to_le32(lower_32_bits(offset));
	c.common.cdw13 = cpu_to_le32(upper_32_bits(offset));
	c.common.cdw15 = cpu_to_le32(len / 4 - 1);
	ret = nvme_lm_cmd(lm, &c, buf, len, &dw0,
			  "Migration Receive: Get Controller State");
	if (!ret && suspended)
		*suspended = dw0 & 1;
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_get_state, NVME_LM_USERS);

/**
 * nvme_lm_set_state() - load a piece of state into the VF's controller
 * @lm: the handle
 * @seq: which piece: first, middle, last, or the only one
 * @csvi: NVMe-defined state version index, 1-based (0: none)
 * @csuuidi: vendor-specific state UUID index, 1-based (0: none)
 * @offset: byte offset of this piece in the state, a multiple of 4
 * @buf: the piece, in a kernel buffer (not on the stack)
 * @len: its length, a non-zero multiple of 4
 *
 * The controller must be suspended. The caller validates the state first:
 * it may come from userspace.
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_set_state(struct nvme_lm *lm, enum nvme_lm_seq seq, u8 csvi,
		      u8 csuuidi, u64 offset, const void *buf, u32 len)
{
	struct nvme_command c = { };

	if (!len || len % 4 || offset % 4 || seq > NVME_LM_SEQ_ONLY)
		return -EINVAL;
	c.common.opcode = nvme_admin_migration_send;
	c.common.cdw10 = cpu_to_le32(2 | (u32)seq << 16);
	c.common.cdw11 = cpu_to_le32(lm->cntlid | (u32)csvi << 16 |
				     (u32)csuuidi << 24);
	c.common.cdw12 = cpu_to_le32(lower_32_bits(offset));
	c.common.cdw13 = cpu_to_le32(upper_32_bits(offset));
	c.common.cdw15 = cpu_to_le32(len / 4);
	return nvme_lm_cmd(lm, &c, (void *)buf, len, NULL,
			   "Migration Send: Set Controller State");
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_set_state, NVME_LM_USERS);

/* Track Memory Changes (NVMe 2.2) ---------------------------------------- */

/**
 * nvme_lm_identify_ctrl() - the PF's Identify Controller data
 * @lm: the handle
 * @buf: a kernel buffer (not on the stack)
 * @len: its size, at least NVME_IDENTIFY_DATA_SIZE
 *
 * Raw bytes for the caller to parse: the PF is the controller that tracks
 * its secondary controllers' memory writes, so its Identify data holds the
 * Track Memory Changes limits (TRATTR, CMMRTD, MINMRTG, MAXMRTG).
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_identify_ctrl(struct nvme_lm *lm, void *buf, size_t len)
{
	return nvme_lm_identify_buf(lm, NVME_ID_CNS_CTRL, buf, len);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_identify_ctrl, NVME_LM_USERS);

/**
 * nvme_lm_track_start() - start tracking the VF's writes to host memory
 * @lm: the handle
 * @data: the Track Memory Changes data structure (ranges, granularity),
 *	  in a kernel buffer (not on the stack), encoded by the caller
 * @len: its length: 8 bytes plus 12 per range
 * @granularity: set to the granularity the controller uses (log2 bytes)
 *
 * Track Send, Track Memory Changes, TACT 1, for the VF's controller only.
 *
 * Return: 0 or a negative errno (-EINVAL for ranges the controller refused).
 */
int nvme_lm_track_start(struct nvme_lm *lm, const void *data, u32 len,
			u8 *granularity)
{
	struct nvme_command c = { };
	u32 dw0 = 0;
	int ret;

	if (len < 8 + 12 || (len - 8) % 12)
		return -EINVAL;
	c.common.opcode = nvme_admin_track_send;
	c.common.cdw10 = cpu_to_le32(1 | 1 << 16);
	c.common.cdw11 = cpu_to_le32(lm->cntlid);
	ret = nvme_lm_cmd(lm, &c, (void *)data, len, &dw0,
			  "Track Send: start tracking memory changes");
	if (!ret)
		*granularity = dw0 & 0xff;
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_track_start, NVME_LM_USERS);

/**
 * nvme_lm_track_stop() - stop tracking the VF's writes to host memory
 * @lm: the handle
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_track_stop(struct nvme_lm *lm)
{
	struct nvme_command c = { };

	c.common.opcode = nvme_admin_track_send;
	c.common.cdw10 = cpu_to_le32(1);
	c.common.cdw11 = cpu_to_le32(lm->cntlid);
	return nvme_lm_cmd(lm, &c, NULL, 0, NULL,
			   "Track Send: stop tracking memory changes");
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_track_stop, NVME_LM_USERS);

/**
 * nvme_lm_track_receive() - read and clear the VF's tracked memory changes
 * @lm: the handle
 * @buf: a kernel buffer (not on the stack)
 * @len: its length, a multiple of 4, at least 16 bytes
 *
 * Track Receive, Tracked Memory Changes: the controller fills @buf with a
 * Tracked Memory Change data structure and forgets what it reported; its
 * attribute bit 0 says whether more changes remain.
 *
 * Return: 0 or a negative errno.
 */
int nvme_lm_track_receive(struct nvme_lm *lm, void *buf, u32 len)
{
	struct nvme_command c = { };

	if (len < 16 || len % 4)
		return -EINVAL;
	c.common.opcode = nvme_admin_track_recv;
	c.common.cdw11 = cpu_to_le32(lm->cntlid);
	c.common.cdw15 = cpu_to_le32(len / 4 - 1);
	return nvme_lm_cmd(lm, &c, buf, len, NULL,
			   "Track Receive: tracked memory changes");
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_track_receive, NVME_LM_USERS);

/* Controller Data Queue ------------------------------------------------- */

static u8 *nvme_lm_cdq_entry(struct nvme_lm_cdq *q, u32 idx)
{
	size_t off = (size_t)idx * NVME_LM_CDQ_ENTRY_SIZE;

	return (u8 *)q->pages[off / NVME_CTRL_PAGE_SIZE] +
		off % NVME_CTRL_PAGE_SIZE;
}

/* Whether @q was deleted by a disable of its PF controller. */
static bool nvme_lm_cdq_lost(struct nvme_lm_cdq *q)
{
	bool lost;

	spin_lock_irq(&nvme_lm_cdq_lock);
	lost = q->lost;
	spin_unlock_irq(&nvme_lm_cdq_lock);
	return lost;
}

/*
 * Whether the slot @dist (below the ring size) slots past the head holds an
 * entry the controller posted since the host last consumed that slot: its
 * phase tag is the current one, inverted past the end of the ring. Under
 * @q->lm->lock.
 */
static bool nvme_lm_cdq_posted(struct nvme_lm_cdq *q, u32 dist)
{
	u32 idx = q->head + dist;
	u8 phase = q->phase;

	if (idx >= q->nr_entries) {
		idx -= q->nr_entries;
		phase ^= 1;
	}
	return (READ_ONCE(nvme_lm_cdq_entry(q, idx)[NVME_LM_CDQ_ATTR]) & 1) ==
		phase;
}

/*
 * The entries posted and not consumed yet: the controller's tail is that
 * many slots past the head (as of the scan; the controller may be adding
 * more). At most the ring size - 1: a full ring keeps one slot free.
 * Under @q->lm->lock.
 */
static u32 nvme_lm_cdq_pending(struct nvme_lm_cdq *q)
{
	u32 n = 0;

	while (n < q->nr_entries - 1 && nvme_lm_cdq_posted(q, n))
		n++;
	return n;
}

static void nvme_lm_cdq_free(struct nvme_lm_cdq *q)
{
	struct device *dev = q->lm->ctrl->dev;
	u32 i;

	if (q->prp_list)
		dma_free_coherent(dev, NVME_CTRL_PAGE_SIZE, q->prp_list,
				  q->prp_list_dma);
	for (i = 0; q->pages && i < q->npages; i++)
		if (q->pages[i])
			dma_free_coherent(dev, NVME_CTRL_PAGE_SIZE, q->pages[i],
					  q->pages_dma[i]);
	kfree(q->pages);
	kfree(q->pages_dma);
	kfree(q);
}

/* The largest ring nvme_lm_cdq_create() gives the PF, in entries. */
static u32 nvme_lm_cdq_max_entries(const struct nvme_lm *lm)
{
	u32 pages = min_t(u32, max_t(u32, lm->mcdqpc, 1),
			  NVME_CTRL_PAGE_SIZE / sizeof(__le64));

	return pages * (NVME_CTRL_PAGE_SIZE / NVME_LM_CDQ_ENTRY_SIZE);
}

/*
 * Checks that the PF's User Data Migration Queues post entries in the one
 * format the service parses (LBA Migration Queue Entry Type 0), from its
 * NVM Command Set Identify Controller (CNS 06h, CSI 00h).
 */
static int nvme_lm_cdq_format(struct nvme_lm *lm)
{
	u8 *buf, lbamqf;
	int ret;

	buf = kzalloc(NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&lm->lock);
	ret = nvme_lm_identify(lm, NVME_ID_CNS_CS_CTRL, buf);
	mutex_unlock(&lm->lock);
	lbamqf = buf[NVME_LM_ID_NVM_LBAMQF];
	kfree(buf);
	if (ret)
		return ret;
	if (lbamqf != NVME_LM_LBAMQF_TYPE_0) {
		dev_err_ratelimited(&lm->vf->dev,
				    "CDQ: PF %s posts LBA Migration Queue Format %#x, not Type 0\n",
				    dev_name(lm->ctrl->device), lbamqf);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* Delivers the events posted since the last run, in process context. */
static void nvme_lm_cdq_event_work(struct work_struct *work)
{
	struct nvme_lm_cdq *q = container_of(work, struct nvme_lm_cdq,
					     event_work);
	unsigned long events;

	spin_lock_irq(&nvme_lm_cdq_lock);
	events = q->events;
	q->events = 0;
	spin_unlock_irq(&nvme_lm_cdq_lock);
	if (events & BIT(NVME_LM_CDQ_FULL))
		q->notify(q->data, NVME_LM_CDQ_FULL);
	if (events & BIT(NVME_LM_CDQ_TAIL_TRIGGER))
		q->notify(q->data, NVME_LM_CDQ_TAIL_TRIGGER);
}

/* Queues @event for the owner; nvme_lm_cdq_lock held, @q on the list. */
static void nvme_lm_cdq_post_event(struct nvme_lm_cdq *q,
				   enum nvme_lm_cdq_event event)
{
	lockdep_assert_held(&nvme_lm_cdq_lock);
	if (!q->notify)
		return;
	q->events |= BIT(event);
	schedule_work(&q->event_work);
}

/**
 * nvme_lm_cdq_create() - create the VF's User Data Migration Queue
 * @lm: the handle
 * @nr_entries: ring size in 32-byte entries (at least 2)
 * @notify: called on tail-trigger and queue-full events (may be NULL)
 * @data: argument of @notify
 *
 * The ring is allocated and DMA-mapped on the PF: one page is given to the
 * controller as a contiguous queue, more pages through a PRP list within
 * the controller's MCDQPC limit. Logging starts with nvme_lm_cdq_log().
 * The PF must post LBA Migration Queue Entry Type 0 (LBAMQF 0h in its NVM
 * Command Set Identify Controller), the only entry format the service
 * knows.
 *
 * Return: the queue, or an ERR_PTR: -EINVAL for a size the controller
 * cannot take, -EBUSY if the VF has one already, -EOPNOTSUPP if the PF
 * posts entries of another format, -EAGAIN if the PF controller was
 * disabled while the queue was created, -ENOMEM, or a command's error.
 */
struct nvme_lm_cdq *nvme_lm_cdq_create(struct nvme_lm *lm, u32 nr_entries,
				       nvme_lm_cdq_notify_t notify, void *data)
{
	u64 bytes = (u64)nr_entries * NVME_LM_CDQ_ENTRY_SIZE;
	u32 npages = DIV_ROUND_UP_ULL(bytes, NVME_CTRL_PAGE_SIZE);
	struct device *dev = lm->ctrl->dev;
	struct nvme_command c = { };
	struct nvme_lm_cdq *q;
	u32 i, dw0 = 0;
	u64 disables;
	int ret;

	if (nr_entries < 2 ||
	    (npages > 1 && (npages > lm->mcdqpc ||
			    npages > NVME_CTRL_PAGE_SIZE / sizeof(__le64)))) {
		dev_err_ratelimited(&lm->vf->dev,
				    "CDQ of %u entries: the PF takes 2 to %u\n",
				    nr_entries, nvme_lm_cdq_max_entries(lm));
		return ERR_PTR(-EINVAL);
	}
	ret = nvme_lm_cdq_format(lm);
	if (ret)
		return ERR_PTR(ret);

	q = kzalloc_obj(*q, GFP_KERNEL);
	if (!q)
		return ERR_PTR(-ENOMEM);
	q->lm = lm;
	q->nr_entries = nr_entries;
	q->phase = 1;
	q->notify = notify;
	q->data = data;
	INIT_WORK(&q->event_work, nvme_lm_cdq_event_work);
	q->npages = npages;
	q->pages = kcalloc(npages, sizeof(*q->pages), GFP_KERNEL);
	q->pages_dma = kcalloc(npages, sizeof(*q->pages_dma), GFP_KERNEL);
	if (!q->pages || !q->pages_dma)
		goto nomem;
	for (i = 0; i < npages; i++) {
		q->pages[i] = dma_alloc_coherent(dev, NVME_CTRL_PAGE_SIZE,
						 &q->pages_dma[i], GFP_KERNEL);
		if (!q->pages[i])
			goto nomem;
	}
	if (npages > 1) {
		q->prp_list = dma_alloc_coherent(dev, NVME_CTRL_PAGE_SIZE,
						 &q->prp_list_dma, GFP_KERNEL);
		if (!q->prp_list)
			goto nomem;
		for (i = 0; i < npages; i++)
			q->prp_list[i] = cpu_to_le64(q->pages_dma[i]);
	}

	c.common.opcode = nvme_admin_cdq;
	c.common.cdw11 = cpu_to_le32((npages == 1) | (u32)lm->cntlid << 16);
	c.common.cdw12 = cpu_to_le32(bytes / 4);
	c.common.dptr.prp1 = cpu_to_le64(npages == 1 ? q->pages_dma[0] :
					 q->prp_list_dma);

	mutex_lock(&lm->lock);
	if (lm->cdq) {
		ret = -EBUSY;
		goto unlock;
	}
	spin_lock_irq(&nvme_lm_cdq_lock);
	disables = nvme_lm_pf_disables;
	spin_unlock_irq(&nvme_lm_cdq_lock);
	nvme_lm_cdq_create_test_delay();
	ret = nvme_lm_submit(lm, &c, NULL, 0, &dw0,
			     "Controller Data Queue: Create");
	if (ret)
		goto unlock;
	q->cdqid = dw0 & 0xffff;
	spin_lock_irq(&nvme_lm_cdq_lock);
	if (nvme_lm_pf_disables != disables) {
		/* Made before the disable (gone) or after: not known. */
		ret = -EAGAIN;
	} else {
		list_add(&q->entry, &nvme_lm_cdqs);
		lm->cdq = q;
	}
	spin_unlock_irq(&nvme_lm_cdq_lock);
	if (ret) {
		c.common.cdw10 = cpu_to_le32(1);
		c.common.cdw11 = cpu_to_le32(q->cdqid);
		c.common.cdw12 = 0;
		c.common.dptr.prp1 = 0;
		nvme_lm_submit(lm, &c, NULL, 0, NULL,
			       "Controller Data Queue: Delete");
		dev_err_ratelimited(&lm->vf->dev,
				    "CDQ: PF %s was reset while the queue was created\n",
				    dev_name(lm->ctrl->device));
	}
unlock:
	mutex_unlock(&lm->lock);
	if (ret) {
		nvme_lm_cdq_free(q);
		return ERR_PTR(ret);
	}
	return q;

nomem:
	nvme_lm_cdq_free(q);
	return ERR_PTR(-ENOMEM);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cdq_create, NVME_LM_USERS);

/**
 * nvme_lm_cdq_destroy() - delete a User Data Migration Queue
 * @cdq: the queue
 *
 * Deletes it on the controller (if the PF still answers and has not
 * deleted it in a reset) and frees the ring. No event callback runs after
 * this returns.
 */
void nvme_lm_cdq_destroy(struct nvme_lm_cdq *cdq)
{
	struct nvme_lm *lm = cdq->lm;
	struct nvme_command c = { };

	c.common.opcode = nvme_admin_cdq;
	c.common.cdw10 = cpu_to_le32(1);
	c.common.cdw11 = cpu_to_le32(cdq->cdqid);

	mutex_lock(&lm->lock);
	/* A lost queue's ID may be another queue's now. */
	if (nvme_ctrl_state(lm->ctrl) == NVME_CTRL_LIVE &&
	    !nvme_lm_cdq_lost(cdq))
		nvme_lm_submit(lm, &c, NULL, 0, NULL,
			       "Controller Data Queue: Delete");
	spin_lock_irq(&nvme_lm_cdq_lock);
	list_del(&cdq->entry);
	spin_unlock_irq(&nvme_lm_cdq_lock);
	lm->cdq = NULL;
	mutex_unlock(&lm->lock);
	/* Off the list, nothing queues it again; the callback may lock. */
	cancel_work_sync(&cdq->event_work);
	nvme_lm_cdq_free(cdq);
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cdq_destroy, NVME_LM_USERS);

/**
 * nvme_lm_cdq_log() - start or stop logging user data changes
 * @cdq: the queue
 * @start: start (true) or stop (false)
 *
 * Return: 0; -EALREADY if the controller is suspended; -ENOSPC if the queue
 * is still full; -ENOENT if the PF controller deleted it in a reset;
 * another negative errno.
 */
int nvme_lm_cdq_log(struct nvme_lm_cdq *cdq, bool start)
{
	struct nvme_command c = { };
	int ret;

	c.common.opcode = nvme_admin_track_send;
	c.common.cdw10 = cpu_to_le32((u32)start << 16);
	c.common.cdw11 = cpu_to_le32(cdq->cdqid);
	mutex_lock(&cdq->lm->lock);
	if (nvme_lm_cdq_lost(cdq))
		ret = -ENOENT;
	else
		ret = nvme_lm_submit(cdq->lm, &c, NULL, 0, NULL,
				     start ? "Track Send: start" :
				     "Track Send: stop");
	mutex_unlock(&cdq->lm->lock);
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cdq_log, NVME_LM_USERS);

/*
 * Set Features, Controller Data Queue: returns the head and sets the
 * tail-pointer trigger. ETPT is the trigger's new state, not a request to
 * change it: a conforming controller disarms an armed trigger on a Set
 * with ETPT cleared (its TPT is then ignored). Under @q->lm->lock.
 */
static int nvme_lm_cdq_set_feature(struct nvme_lm_cdq *q, bool etpt, u32 tpt)
{
	struct nvme_command c = { };

	c.features.opcode = nvme_admin_set_features;
	c.features.fid = cpu_to_le32(NVME_FEAT_CDQ);
	c.common.cdw11 = cpu_to_le32(q->cdqid | (u32)etpt << 31);
	c.common.cdw12 = cpu_to_le32(q->head);
	c.common.cdw13 = cpu_to_le32(etpt ? tpt : 0);
	return nvme_lm_submit(q->lm, &c, NULL, 0, NULL,
			      "Set Features: Controller Data Queue");
}

/*
 * Returns the head, keeping the trigger as it is: an armed trigger whose
 * event has not come is sent again, with its slot. If its event comes
 * while this is in flight, the controller may raise it once more (the
 * tail is still at the slot) or arm it a ring behind; the first is dropped
 * as not armed, the second is disarmed by the next head update.
 */
static int nvme_lm_cdq_set_head(struct nvme_lm_cdq *q)
{
	bool armed;
	u32 tpt;

	spin_lock_irq(&nvme_lm_cdq_lock);
	armed = q->armed;
	tpt = q->tpt;
	spin_unlock_irq(&nvme_lm_cdq_lock);
	return nvme_lm_cdq_set_feature(q, armed, tpt);
}

/**
 * nvme_lm_cdq_read() - consume new entries
 * @cdq: the queue
 * @buf: room for @max_entries entries of NVME_LM_CDQ_ENTRY_SIZE bytes
 * @max_entries: how many to take at most
 * @overflow: set if the queue became full since the last read that was
 *	given @overflow (the controller then stopped logging; the caller must
 *	treat the namespace as entirely changed and restart logging); may be
 *	NULL
 *
 * Copies the entries whose phase tag is current, in order, and returns the
 * new head to the controller; an armed tail-pointer trigger stays armed.
 *
 * The queue is full when an entry with ESA 7 (queue full) is consumed here
 * or when the controller's queue-full event arrives, whichever comes first;
 * either one reports each full condition once, even if the other never
 * comes (an event lost, or the ring read before it arrives).
 *
 * Return: the number of entries copied, or a negative errno: -ENOENT once
 * the PF controller has deleted the queue in a reset (from then on the
 * log is incomplete: writes since are in no queue).
 */
int nvme_lm_cdq_read(struct nvme_lm_cdq *cdq, void *buf, u32 max_entries,
		     bool *overflow)
{
	u32 n = 0;
	int ret = 0;

	mutex_lock(&cdq->lm->lock);
	if (nvme_lm_cdq_lost(cdq)) {
		mutex_unlock(&cdq->lm->lock);
		return -ENOENT;
	}
	while (n < max_entries && nvme_lm_cdq_posted(cdq, 0)) {
		u8 *e = (u8 *)buf + (size_t)n * NVME_LM_CDQ_ENTRY_SIZE;

		dma_rmb();
		memcpy(e, nvme_lm_cdq_entry(cdq, cdq->head),
		       NVME_LM_CDQ_ENTRY_SIZE);
		if (FIELD_GET(NVME_LM_CDQ_ESA, e[NVME_LM_CDQ_ATTR]) ==
		    NVME_LM_CDQ_ESA_FULL)
			cdq->full_entries++;
		n++;
		if (++cdq->head == cdq->nr_entries) {
			cdq->head = 0;
			cdq->phase ^= 1;
		}
	}
	if (n)
		ret = nvme_lm_cdq_set_head(cdq);
	if (overflow) {
		u64 full;

		/*
		 * Each full condition gives one ESA 7 entry and one event:
		 * the larger count is the number of conditions seen.
		 */
		spin_lock_irq(&nvme_lm_cdq_lock);
		full = max(cdq->full_events, cdq->full_entries);
		spin_unlock_irq(&nvme_lm_cdq_lock);
		*overflow = full > cdq->full_reported;
		cdq->full_reported = full;
	}
	mutex_unlock(&cdq->lm->lock);
	return ret ? ret : n;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cdq_read, NVME_LM_USERS);

/**
 * nvme_lm_cdq_arm() - ask for an event when entries accumulate
 * @cdq: the queue
 * @entries_ahead: raise the tail-trigger event once this many new entries
 *	have been posted (1 to the ring size - 1)
 *
 * New entries are those posted after the ones already waiting: the trigger
 * is set @entries_ahead slots past the tail (the first slot, from the head,
 * without a new entry), so entries not yet read do not count. The tail can
 * only reach the slot before the head (the queue is then full): with fewer
 * free slots than @entries_ahead the trigger goes to that last reachable
 * slot, never at or behind the head, where the controller already is or
 * cannot get without the host consuming (the event would come a ring
 * late); the queue-full event then ends the arming. If the controller
 * passes the trigger's slot before the trigger takes effect, the event is
 * delivered from here. One event per arming (it disarms); arm again after
 * it. Reading entries keeps the trigger.
 *
 * Return: 0; -EINVAL for an @entries_ahead out of range; -ENOSPC if the
 * ring is full (read it first); -ENOENT if the PF controller deleted it in
 * a reset; or a command's error.
 */
int nvme_lm_cdq_arm(struct nvme_lm_cdq *cdq, u32 entries_ahead)
{
	struct nvme_lm *lm = cdq->lm;
	u32 pending, room, tpt, prev_tpt;
	bool prev_armed;
	int ret;

	if (!entries_ahead || entries_ahead >= cdq->nr_entries) {
		dev_err_ratelimited(&lm->vf->dev,
				    "CDQ arm: %u entries ahead in a ring of %u\n",
				    entries_ahead, cdq->nr_entries);
		return -EINVAL;
	}
	mutex_lock(&lm->lock);
	if (nvme_lm_cdq_lost(cdq)) {
		ret = -ENOENT;
		goto unlock;
	}
	pending = nvme_lm_cdq_pending(cdq);
	room = cdq->nr_entries - 1 - pending;
	if (!room) {
		dev_err_ratelimited(&lm->vf->dev,
				    "CDQ arm: the ring is full, read it first\n");
		ret = -ENOSPC;
		goto unlock;
	}
	entries_ahead = min(entries_ahead, room);
	tpt = (cdq->head + pending + entries_ahead) % cdq->nr_entries;

	/* Armed before the command: its event may come before it completes. */
	spin_lock_irq(&nvme_lm_cdq_lock);
	prev_armed = cdq->armed;
	prev_tpt = cdq->tpt;
	cdq->armed = true;
	cdq->tpt = tpt;
	spin_unlock_irq(&nvme_lm_cdq_lock);

	ret = nvme_lm_cdq_set_feature(cdq, true, tpt);

	spin_lock_irq(&nvme_lm_cdq_lock);
	if (ret) {
		/* The previous trigger, unless its event came meanwhile. */
		if (cdq->armed && cdq->tpt == tpt) {
			cdq->armed = prev_armed;
			cdq->tpt = prev_tpt;
		}
	} else if (cdq->armed && cdq->tpt == tpt &&
		   nvme_lm_cdq_posted(cdq, pending + entries_ahead - 1)) {
		/*
		 * The tail reached the slot while the command was on its way:
		 * the controller may never raise the event. Raise it here;
		 * one the controller raises as well is dropped as not armed.
		 */
		cdq->armed = false;
		nvme_lm_cdq_post_event(cdq, NVME_LM_CDQ_TAIL_TRIGGER);
	}
	spin_unlock_irq(&nvme_lm_cdq_lock);
unlock:
	mutex_unlock(&lm->lock);
	return ret;
}
EXPORT_SYMBOL_FOR_MODULES(nvme_lm_cdq_arm, NVME_LM_USERS);

/**
 * nvme_lm_handle_aen() - deliver a PF's one-shot CDQ event
 * @ctrl: the PF's controller
 * @status: the completion status of the Asynchronous Event Request
 * @result: completion dwords 0 (event) and 1 (the CDQ ID)
 *
 * Called from the PF's completion interrupt for every asynchronous event,
 * before nvme-core handles (and requeues) it.
 */
void nvme_lm_handle_aen(struct nvme_ctrl *ctrl, __le16 status, u64 result)
{
	u32 dw0 = lower_32_bits(result);
	u16 cdqid = upper_32_bits(result) & 0xffff;
	u8 info = (dw0 >> 8) & 0xff;
	struct nvme_lm_cdq *q;
	unsigned long flags;

	if (le16_to_cpu(status) >> 1 || (dw0 & 0x7) != NVME_AER_ONE_SHOT)
		return;

	spin_lock_irqsave(&nvme_lm_cdq_lock, flags);
	list_for_each_entry(q, &nvme_lm_cdqs, entry) {
		if (q->lm->ctrl != ctrl || q->cdqid != cdqid || q->lost)
			continue;
		if (info == NVME_LM_CDQ_FULL) {
			if (nvme_lm_test_drop_full())
				break;
			/*
			 * Logging stopped: the owner reads, restarts logging
			 * and arms again. A trigger at the last slot, where
			 * the queue-full entry landed, is not raised.
			 */
			q->full_events++;
			q->armed = false;
		} else if (info == NVME_LM_CDQ_TAIL_TRIGGER) {
			/* One-shot: it disarmed the trigger. Once per arming. */
			if (!q->armed)
				break;
			q->armed = false;
		} else {
			break;
		}
		nvme_lm_cdq_post_event(q, info);
		break;
	}
	spin_unlock_irqrestore(&nvme_lm_cdq_lock, flags);
}

/**
 * nvme_lm_pf_disable() - a PF controller is being disabled
 * @ctrl: the PF's controller
 *
 * Called by nvme-pci before it disables the controller (a reset, timeout
 * recovery, suspend or removal), which deletes the controller's Controller
 * Data Queues: every queue of @ctrl is lost, whatever the controller still
 * posts to it. Their owners' next reads fail with -ENOENT; no command is
 * sent for them again, since the controller gives their IDs to new queues.
 * Takes only nvme_lm_cdq_lock: a handle's command may be waiting for the
 * reset that calls this.
 */
void nvme_lm_pf_disable(struct nvme_ctrl *ctrl)
{
	struct nvme_lm_cdq *q;
	unsigned long flags;

	spin_lock_irqsave(&nvme_lm_cdq_lock, flags);
	nvme_lm_pf_disables++;
	list_for_each_entry(q, &nvme_lm_cdqs, entry) {
		if (q->lm->ctrl != ctrl || q->lost)
			continue;
		q->lost = true;
		q->armed = false;
	}
	spin_unlock_irqrestore(&nvme_lm_cdq_lock, flags);
}

/**
 * nvme_lm_pf_remove() - release the VF drivers that use a departing PF
 * @ctrl: the PF's controller, whose drvdata is already cleared
 *
 * Unbinds, one at a time, the driver of every VF that holds a migration
 * handle on @ctrl; their remove() releases the handle. A handle still held
 * after its VF's driver is gone is a driver bug.
 */
void nvme_lm_pf_remove(struct nvme_ctrl *ctrl)
{
	struct pci_dev *vf, *prev = NULL;
	struct nvme_lm *lm;

	for (;;) {
		vf = NULL;
		mutex_lock(&nvme_lm_list_lock);
		list_for_each_entry(lm, &nvme_lm_handles, entry) {
			if (lm->ctrl == ctrl) {
				vf = pci_dev_get(lm->vf);
				break;
			}
		}
		mutex_unlock(&nvme_lm_list_lock);
		if (!vf)
			break;
		if (WARN(vf == prev, "%s: %s keeps its migration handle\n",
			 dev_name(ctrl->device), pci_name(vf))) {
			pci_dev_put(vf);
			break;
		}
		dev_info(ctrl->device, "releasing %s, a live migration user\n",
			 pci_name(vf));
		device_release_driver(&vf->dev);
		pci_dev_put(prev);
		prev = vf;
	}
	pci_dev_put(prev);
}

#if IS_ENABLED(CONFIG_NVME_HOST_LM_KUNIT_TEST)
#include "lm_test.c"
#endif
