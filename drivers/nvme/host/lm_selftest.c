// SPDX-License-Identifier: GPL-2.0
/*
 * Test driver of the NVMe live migration service: a minimal vfio-pci
 * variant driver, bound to an NVMe VF through driver_override only. It
 * holds the VF's migration handle and exposes the service's operations in
 * debugfs, while userspace can drive the VF itself through VFIO (so that
 * writes it makes land in the kernel-owned CDQ). For the in-VM tests:
 *
 *   /sys/kernel/debug/nvme_lm_selftest/<VF>/
 *     cntlid   the handle's secondary controller ID
 *     cmd      write "suspend", "notify", "resume", "get-state",
 *              "set-state [pieces]", "cdq-create <entries>", "cdq-start",
 *              "cdq-stop", "cdq-arm <entries>", "cdq-destroy",
 *              "media-open <nsid>", "media-close", "media-flush",
 *              "media-try <nsid>" (claim and release at once),
 *              "media-zero <slba> <nlb>" (one write-zeroes),
 *              "media-chunk <bytes>" (the size of each I/O of a batch),
 *              "media-buf <0|1|2>" (kmalloc, vmalloc, vmalloc at a 512-byte
 *              offset); the write fails with the operation's errno
 *     state    the state buffer get-state fills and set-state sends
 *     cdq      read: consumes CDQ entries (32 bytes each)
 *     events   tail-trigger and full events seen, reads that reported
 *              overflow
 *     media    read/write: the claimed namespace, through the claim; the
 *              offset and length are whole blocks, each call one batch of
 *              I/Os of media-chunk bytes (up to NVME_LM_MEDIA_MAX_BATCH)
 *     media-info  "nsid nsze lbads" of the claim
 */

#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/nvme-lm.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/unaligned.h>
#include <linux/vfio_pci_core.h>
#include <linux/vmalloc.h>

#define LM_SELFTEST_STATE_MAX	SZ_1M

struct lm_selftest {
	struct vfio_pci_core_device core;	/* first: vfio_alloc_device() */
	struct pci_dev *pdev;
	struct nvme_lm *lm;
	struct nvme_lm_cdq *cdq;
	struct dentry *dir;
	struct mutex lock; /* serializes debugfs operations */
	u8 *state;
	size_t state_len;
	atomic_t tail_events;
	atomic_t full_events;
	unsigned int overflows;
	struct nvme_lm_media *media;
	u32 media_nsid;
	u32 media_chunk;
	u32 media_buf;
};

static struct dentry *lm_selftest_root;

/*
 * With put_after_remove, remove() only detaches the handle and keeps it,
 * with its CDQ and claim, until the module goes: a driver whose handle
 * outlives its remove() (the VFIO device's release can run after it).
 */
static bool put_after_remove;
module_param(put_after_remove, bool, 0644);
MODULE_PARM_DESC(put_after_remove,
		 "test only: detach the handle in remove(), put it at module unload");

struct lm_selftest_kept {
	struct list_head entry;
	struct nvme_lm *lm;
	struct nvme_lm_cdq *cdq;
	struct nvme_lm_media *media;
};

static LIST_HEAD(lm_selftest_kept_list);
static DEFINE_MUTEX(lm_selftest_kept_lock);

/* Claims go before the handle they point at. */
static void lm_selftest_put(struct nvme_lm *lm, struct nvme_lm_cdq *cdq,
			    struct nvme_lm_media *media)
{
	nvme_lm_media_close(media);
	if (cdq)
		nvme_lm_cdq_destroy(cdq);
	nvme_lm_put(lm);
}

/* Keeps @t's handle, detached, for lm_selftest_exit(); false if it cannot. */
static bool lm_selftest_keep(struct lm_selftest *t)
{
	struct lm_selftest_kept *k;

	if (!READ_ONCE(put_after_remove))
		return false;
	k = kzalloc_obj(*k, GFP_KERNEL);
	if (!k)
		return false;
	nvme_lm_detach(t->lm);
	k->lm = t->lm;
	k->cdq = t->cdq;
	k->media = t->media;
	mutex_lock(&lm_selftest_kept_lock);
	list_add_tail(&k->entry, &lm_selftest_kept_list);
	mutex_unlock(&lm_selftest_kept_lock);
	dev_info(&t->pdev->dev, "handle detached, kept until the module goes\n");
	return true;
}

static void lm_selftest_notify(void *data, enum nvme_lm_cdq_event event)
{
	struct lm_selftest *t = data;

	if (event == NVME_LM_CDQ_FULL)
		atomic_inc(&t->full_events);
	else
		atomic_inc(&t->tail_events);
}

/* The longest Get/Set State piece: the PF's transfer limit, 4-aligned. */
static size_t lm_selftest_max_piece(struct lm_selftest *t)
{
	return nvme_lm_max_transfer(t->lm) & ~3U;
}

/* Reads the whole state: the header first, for the sizes; then in pieces. */
static int lm_selftest_get_state(struct lm_selftest *t)
{
	size_t max = lm_selftest_max_piece(t), off;
	u64 nvmecss, vss, len;
	int ret;

	ret = nvme_lm_get_state(t->lm, 1, 1, 0, t->state, 48, NULL);
	if (ret)
		return ret;
	nvmecss = get_unaligned_le64(t->state + 16);
	vss = get_unaligned_le64(t->state + 32);
	len = 48 + 4 * (nvmecss + vss);
	if (nvmecss > LM_SELFTEST_STATE_MAX || vss > LM_SELFTEST_STATE_MAX ||
	    len > LM_SELFTEST_STATE_MAX)
		return -EOVERFLOW;
	for (off = 0; off < len; off += max) {
		ret = nvme_lm_get_state(t->lm, 1, 1, off, t->state + off,
					min_t(size_t, max, len - off), NULL);
		if (ret)
			return ret;
	}
	t->state_len = len;
	return 0;
}

static int lm_selftest_set_state(struct lm_selftest *t, unsigned int pieces)
{
	size_t max = lm_selftest_max_piece(t), piece, off = 0;
	int ret = 0;

	if (!t->state_len || t->state_len % 4)
		return -EINVAL;
	/* At least as many pieces as the transfer limit needs. */
	pieces = max_t(size_t, pieces, DIV_ROUND_UP(t->state_len, max));
	if (pieces <= 1)
		return nvme_lm_set_state(t->lm, NVME_LM_SEQ_ONLY, 1, 1, 0,
					 t->state, t->state_len);
	piece = round_up(DIV_ROUND_UP(t->state_len, pieces), 4);
	while (!ret && off < t->state_len) {
		size_t len = min(piece, t->state_len - off);
		enum nvme_lm_seq seq = !off ? NVME_LM_SEQ_FIRST :
			off + len == t->state_len ? NVME_LM_SEQ_LAST :
			NVME_LM_SEQ_MIDDLE;

		ret = nvme_lm_set_state(t->lm, seq, 1, 1, off, t->state + off,
					len);
		off += len;
	}
	return ret;
}

static int lm_selftest_media_cmd(struct lm_selftest *t, const char *cmd,
				 unsigned int n, u64 n2)
{
	struct nvme_lm_media_io io = { .op = NVME_LM_MEDIA_WRITE_ZEROES };
	struct nvme_lm_media *m;

	if (!strcmp(cmd, "media-open")) {
		if (t->media)
			return -EBUSY;
		m = nvme_lm_media_open(t->lm, n);
		if (IS_ERR(m))
			return PTR_ERR(m);
		t->media = m;
		t->media_nsid = n;
		return 0;
	}
	if (!strcmp(cmd, "media-try")) {
		m = nvme_lm_media_open(t->lm, n);
		if (IS_ERR(m))
			return PTR_ERR(m);
		nvme_lm_media_close(m);
		return 0;
	}
	if (!strcmp(cmd, "media-chunk")) {
		if (!n || n > NVME_LM_MEDIA_MAX_BYTES)
			return -EINVAL;
		t->media_chunk = n;
		return 0;
	}
	if (!strcmp(cmd, "media-buf")) {
		if (n > 2)
			return -EINVAL;
		t->media_buf = n;
		return 0;
	}
	if (!t->media)
		return -ENOENT;
	if (!strcmp(cmd, "media-close")) {
		nvme_lm_media_close(t->media);
		t->media = NULL;
		return 0;
	}
	if (!strcmp(cmd, "media-flush"))
		return nvme_lm_media_flush(t->media);
	if (!strcmp(cmd, "media-zero")) {
		if (n2 > U32_MAX)
			return -EINVAL;
		io.slba = n;
		io.nlb = n2;
		return nvme_lm_media_rw(t->media, &io, 1);
	}
	return -EINVAL;
}

static int lm_selftest_cmd(struct lm_selftest *t, char *cmd)
{
	unsigned int n = 0;
	u64 n2 = 0;
	char *arg, *arg2;

	arg = strchr(cmd, ' ');
	if (arg) {
		*arg++ = '\0';
		arg2 = strchr(arg, ' ');
		if (arg2) {
			*arg2++ = '\0';
			if (kstrtou64(strim(arg2), 0, &n2))
				return -EINVAL;
		}
		if (kstrtouint(arg, 0, &n))
			return -EINVAL;
	}

	if (!strncmp(cmd, "media-", 6))
		return lm_selftest_media_cmd(t, cmd, n, n2);

	if (!strcmp(cmd, "suspend"))
		return nvme_lm_suspend(t->lm, NVME_LM_SUSPEND_FULL);
	if (!strcmp(cmd, "notify"))
		return nvme_lm_suspend(t->lm, NVME_LM_SUSPEND_NOTIFY);
	if (!strcmp(cmd, "resume"))
		return nvme_lm_resume(t->lm);
	if (!strcmp(cmd, "get-state"))
		return lm_selftest_get_state(t);
	if (!strcmp(cmd, "set-state"))
		return lm_selftest_set_state(t, n);
	if (!strcmp(cmd, "cdq-create")) {
		struct nvme_lm_cdq *q;

		if (t->cdq)
			return -EBUSY;
		/* Counts are per queue: from zero before it can raise any. */
		atomic_set(&t->tail_events, 0);
		atomic_set(&t->full_events, 0);
		t->overflows = 0;
		q = nvme_lm_cdq_create(t->lm, n, lm_selftest_notify, t);
		if (IS_ERR(q))
			return PTR_ERR(q);
		t->cdq = q;
		return 0;
	}
	if (!t->cdq)
		return -ENOENT;
	if (!strcmp(cmd, "cdq-start"))
		return nvme_lm_cdq_log(t->cdq, true);
	if (!strcmp(cmd, "cdq-stop"))
		return nvme_lm_cdq_log(t->cdq, false);
	if (!strcmp(cmd, "cdq-arm"))
		return nvme_lm_cdq_arm(t->cdq, n);
	if (!strcmp(cmd, "cdq-destroy")) {
		nvme_lm_cdq_destroy(t->cdq);
		t->cdq = NULL;
		return 0;
	}
	return -EINVAL;
}

static ssize_t lm_selftest_cmd_write(struct file *file, const char __user *ubuf,
				     size_t count, loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	char buf[64];
	int ret;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	strim(buf);
	mutex_lock(&t->lock);
	ret = lm_selftest_cmd(t, buf);
	mutex_unlock(&t->lock);
	if (ret)
		dev_info(&t->pdev->dev, "selftest: '%s' failed: %d\n", buf, ret);
	return ret ? ret : count;
}

static const struct file_operations lm_selftest_cmd_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = lm_selftest_cmd_write,
};

static ssize_t lm_selftest_state_read(struct file *file, char __user *ubuf,
				      size_t count, loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	ssize_t ret;

	mutex_lock(&t->lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, t->state, t->state_len);
	mutex_unlock(&t->lock);
	return ret;
}

static ssize_t lm_selftest_state_write(struct file *file,
				       const char __user *ubuf, size_t count,
				       loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	ssize_t ret;

	mutex_lock(&t->lock);
	if (!*ppos)
		t->state_len = 0;
	ret = simple_write_to_buffer(t->state, LM_SELFTEST_STATE_MAX, ppos,
				     ubuf, count);
	if (ret > 0)
		t->state_len = max_t(size_t, t->state_len, *ppos);
	mutex_unlock(&t->lock);
	return ret;
}

static const struct file_operations lm_selftest_state_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = lm_selftest_state_read,
	.write = lm_selftest_state_write,
};

static ssize_t lm_selftest_cdq_read(struct file *file, char __user *ubuf,
				    size_t count, loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	u32 max = min_t(size_t, count, SZ_64K) / NVME_LM_CDQ_ENTRY_SIZE;
	bool overflow = false;
	ssize_t ret;
	void *buf;

	if (!max)
		return -EINVAL;
	buf = kvzalloc((size_t)max * NVME_LM_CDQ_ENTRY_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&t->lock);
	ret = t->cdq ? nvme_lm_cdq_read(t->cdq, buf, max, &overflow) : -ENOENT;
	if (overflow)
		t->overflows++;
	mutex_unlock(&t->lock);
	if (ret > 0 && copy_to_user(ubuf, buf, ret * NVME_LM_CDQ_ENTRY_SIZE))
		ret = -EFAULT;
	else if (ret > 0)
		ret *= NVME_LM_CDQ_ENTRY_SIZE;
	kvfree(buf);
	return ret;
}

/* The offset into a media-buf 2 buffer: its pieces straddle pages. */
#define LM_SELFTEST_MEDIA_SKEW	512

static void lm_selftest_media_free(struct lm_selftest *t, void **bufs,
				   unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (t->media_buf)
			vfree(bufs[i]);
		else
			kfree(bufs[i]);
}

/*
 * One batch through the claim: @count bytes at *@ppos in I/Os of
 * media_chunk bytes, each in its own buffer of the kind media_buf says.
 */
static ssize_t lm_selftest_media_io(struct lm_selftest *t, char __user *rbuf,
				    const char __user *wbuf, size_t count,
				    loff_t *ppos)
{
	size_t chunk = t->media_chunk, off;
	struct nvme_lm_media_io *io;
	unsigned int i, n = 0, lbads;
	void **bufs;
	u64 cap;
	int ret = 0;

	if (!t->media)
		return -ENOENT;
	lbads = nvme_lm_media_lbads(t->media);
	cap = nvme_lm_media_nsze(t->media) << lbads;
	if (*ppos < 0 || (*ppos | count | chunk) & ((1U << lbads) - 1))
		return -EINVAL;
	if (rbuf) {
		if (*ppos >= cap)
			return 0;
		count = min_t(u64, count, cap - *ppos);
	}
	count = min_t(size_t, count, chunk * NVME_LM_MEDIA_MAX_BATCH);
	io = kcalloc(NVME_LM_MEDIA_MAX_BATCH, sizeof(*io), GFP_KERNEL);
	bufs = kcalloc(NVME_LM_MEDIA_MAX_BATCH, sizeof(*bufs), GFP_KERNEL);
	if (!io || !bufs) {
		ret = -ENOMEM;
		goto out;
	}
	for (off = 0; off < count; off += chunk, n++) {
		size_t len = min(chunk, count - off);
		u8 *p;

		if (t->media_buf == 2) {
			bufs[n] = vmalloc(len + LM_SELFTEST_MEDIA_SKEW);
			p = bufs[n] ? (u8 *)bufs[n] + LM_SELFTEST_MEDIA_SKEW : NULL;
		} else if (t->media_buf == 1) {
			bufs[n] = vmalloc(len);
			p = bufs[n];
		} else {
			bufs[n] = kmalloc(len, GFP_KERNEL);
			p = bufs[n];
		}
		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		if (wbuf && copy_from_user(p, wbuf + off, len)) {
			ret = -EFAULT;
			n++;
			goto out;
		}
		io[n].op = wbuf ? NVME_LM_MEDIA_WRITE : NVME_LM_MEDIA_READ;
		io[n].slba = (*ppos + off) >> lbads;
		io[n].nlb = len >> lbads;
		io[n].buf = p;
	}
	ret = nvme_lm_media_rw(t->media, io, n);
	for (i = 0; !ret && rbuf && i < n; i++)
		if (copy_to_user(rbuf + i * chunk, io[i].buf,
				 (size_t)io[i].nlb << lbads))
			ret = -EFAULT;
out:
	if (bufs)
		lm_selftest_media_free(t, bufs, n);
	kfree(bufs);
	kfree(io);
	if (ret)
		return ret;
	*ppos += count;
	return count;
}

static ssize_t lm_selftest_media_read(struct file *file, char __user *ubuf,
				      size_t count, loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	ssize_t ret;

	mutex_lock(&t->lock);
	ret = lm_selftest_media_io(t, ubuf, NULL, count, ppos);
	mutex_unlock(&t->lock);
	return ret;
}

static ssize_t lm_selftest_media_write(struct file *file,
				       const char __user *ubuf, size_t count,
				       loff_t *ppos)
{
	struct lm_selftest *t = file->private_data;
	ssize_t ret;

	mutex_lock(&t->lock);
	ret = lm_selftest_media_io(t, NULL, ubuf, count, ppos);
	mutex_unlock(&t->lock);
	return ret;
}

static const struct file_operations lm_selftest_media_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = lm_selftest_media_read,
	.write = lm_selftest_media_write,
	.llseek = default_llseek,
};

static int lm_selftest_media_info_show(struct seq_file *m, void *v)
{
	struct lm_selftest *t = m->private;
	int ret = 0;

	mutex_lock(&t->lock);
	if (t->media)
		seq_printf(m, "%u %llu %u\n", t->media_nsid,
			   nvme_lm_media_nsze(t->media),
			   nvme_lm_media_lbads(t->media));
	else
		ret = -ENOENT;
	mutex_unlock(&t->lock);
	return ret;
}
DEFINE_SHOW_ATTRIBUTE(lm_selftest_media_info);

static const struct file_operations lm_selftest_cdq_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = lm_selftest_cdq_read,
};

static int lm_selftest_events_show(struct seq_file *m, void *v)
{
	struct lm_selftest *t = m->private;

	seq_printf(m, "tail %d full %d overflow %u\n",
		   atomic_read(&t->tail_events), atomic_read(&t->full_events),
		   READ_ONCE(t->overflows));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lm_selftest_events);

static int lm_selftest_cntlid_show(struct seq_file *m, void *v)
{
	struct lm_selftest *t = m->private;

	seq_printf(m, "%u\n", nvme_lm_cntlid(t->lm));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lm_selftest_cntlid);

static int lm_selftest_open_device(struct vfio_device *vdev)
{
	struct vfio_pci_core_device *core =
		container_of(vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(core);
	if (ret)
		return ret;
	vfio_pci_core_finish_enable(core);
	return 0;
}

static void lm_selftest_release_dev(struct vfio_device *vdev)
{
	struct lm_selftest *t = container_of(vdev, struct lm_selftest,
					     core.vdev);

	vfree(t->state);
	mutex_destroy(&t->lock);
	vfio_pci_core_release_dev(vdev);
}

static const struct vfio_device_ops lm_selftest_vfio_ops = {
	.name		= "nvme-lm-selftest",
	.init		= vfio_pci_core_init_dev,
	.release	= lm_selftest_release_dev,
	.open_device	= lm_selftest_open_device,
	.close_device	= vfio_pci_core_close_device,
	.ioctl		= vfio_pci_core_ioctl,
	.get_region_info_caps = vfio_pci_ioctl_get_region_info,
	.device_feature	= vfio_pci_core_ioctl_feature,
	.read		= vfio_pci_core_read,
	.write		= vfio_pci_core_write,
	.mmap		= vfio_pci_core_mmap,
	.request	= vfio_pci_core_request,
	.match		= vfio_pci_core_match,
	.match_token_uuid = vfio_pci_core_match_token_uuid,
	.bind_iommufd	= vfio_iommufd_physical_bind,
	.unbind_iommufd	= vfio_iommufd_physical_unbind,
	.attach_ioas	= vfio_iommufd_physical_attach_ioas,
	.detach_ioas	= vfio_iommufd_physical_detach_ioas,
};

static int lm_selftest_probe(struct pci_dev *pdev,
			     const struct pci_device_id *id)
{
	struct lm_selftest *t;
	int ret;

	t = vfio_alloc_device(lm_selftest, core.vdev, &pdev->dev,
			      &lm_selftest_vfio_ops);
	if (IS_ERR(t))
		return PTR_ERR(t);
	t->pdev = pdev;
	t->media_chunk = NVME_LM_MEDIA_MAX_BYTES;
	mutex_init(&t->lock);
	t->state = vzalloc(LM_SELFTEST_STATE_MAX);
	if (!t->state) {
		ret = -ENOMEM;
		goto err_put;
	}
	t->lm = nvme_lm_get(pdev);
	if (IS_ERR(t->lm)) {
		ret = PTR_ERR(t->lm);
		dev_err(&pdev->dev, "no migration handle: %d\n", ret);
		goto err_put;
	}
	dev_set_drvdata(&pdev->dev, &t->core);
	ret = vfio_pci_core_register_device(&t->core);
	if (ret)
		goto err_lm;
	t->dir = debugfs_create_dir(pci_name(pdev), lm_selftest_root);
	debugfs_create_file("cmd", 0200, t->dir, t, &lm_selftest_cmd_fops);
	debugfs_create_file("state", 0600, t->dir, t, &lm_selftest_state_fops);
	debugfs_create_file("cdq", 0400, t->dir, t, &lm_selftest_cdq_fops);
	debugfs_create_file("events", 0400, t->dir, t,
			    &lm_selftest_events_fops);
	debugfs_create_file("cntlid", 0400, t->dir, t,
			    &lm_selftest_cntlid_fops);
	debugfs_create_file("media", 0600, t->dir, t, &lm_selftest_media_fops);
	debugfs_create_file("media-info", 0400, t->dir, t,
			    &lm_selftest_media_info_fops);
	return 0;

err_lm:
	nvme_lm_put(t->lm);
err_put:
	vfio_put_device(&t->core.vdev);
	return ret;
}

static void lm_selftest_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core = dev_get_drvdata(&pdev->dev);
	struct lm_selftest *t = container_of(core, struct lm_selftest, core);

	debugfs_remove_recursive(t->dir);
	vfio_pci_core_unregister_device(core);
	if (!lm_selftest_keep(t))
		lm_selftest_put(t->lm, t->cdq, t->media);
	vfio_put_device(&core->vdev);
}

/* No IDs: the driver binds only devices whose driver_override names it. */
static struct pci_driver lm_selftest_driver = {
	.name = "nvme_lm_selftest",
	.probe = lm_selftest_probe,
	.remove = lm_selftest_remove,
	.err_handler = &vfio_pci_core_err_handlers,
	.driver_managed_dma = true,
};

static int __init lm_selftest_init(void)
{
	int ret;

	lm_selftest_root = debugfs_create_dir("nvme_lm_selftest", NULL);
	ret = pci_register_driver(&lm_selftest_driver);
	if (ret)
		debugfs_remove_recursive(lm_selftest_root);
	return ret;
}

static void __exit lm_selftest_exit(void)
{
	struct lm_selftest_kept *k, *n;

	pci_unregister_driver(&lm_selftest_driver);
	debugfs_remove_recursive(lm_selftest_root);
	list_for_each_entry_safe(k, n, &lm_selftest_kept_list, entry) {
		list_del(&k->entry);
		lm_selftest_put(k->lm, k->cdq, k->media);
		kfree(k);
	}
}

module_init(lm_selftest_init);
module_exit(lm_selftest_exit);
MODULE_DESCRIPTION("Test driver of the NVMe live migration service");
MODULE_IMPORT_NS("IOMMUFD");
MODULE_LICENSE("GPL");
