/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interface between nvme-pci and its live migration service
 * (lm.c). The service's public interface is <linux/nvme-lm.h>.
 */
#ifndef _NVME_HOST_LM_H
#define _NVME_HOST_LM_H

#include <linux/types.h>

struct device;
struct nvme_ctrl;
struct nvme_lm;
struct pci_dev;

/* The modules the service is exported to: the variant driver, its test. */
#define NVME_LM_USERS	"nvme_vfio_pci,nvme_lm_selftest"

#if IS_ENABLED(CONFIG_NVME_HOST_LM)
struct nvme_ctrl *nvme_pci_pf_ctrl(struct pci_dev *vf);
struct nvme_ctrl *nvme_lm_pf_ctrl(const struct nvme_lm *lm);
struct device *nvme_lm_vf_dev(const struct nvme_lm *lm);
int nvme_lm_ns_attached(struct nvme_lm *lm, u32 nsid);
void nvme_lm_handle_aen(struct nvme_ctrl *ctrl, __le16 status, u64 result);
void nvme_lm_pf_remove(struct nvme_ctrl *ctrl);
void nvme_lm_pf_disable(struct nvme_ctrl *ctrl);
#else
static inline void nvme_lm_handle_aen(struct nvme_ctrl *ctrl, __le16 status,
				      u64 result)
{
}

static inline void nvme_lm_pf_remove(struct nvme_ctrl *ctrl)
{
}

static inline void nvme_lm_pf_disable(struct nvme_ctrl *ctrl)
{
}
#endif

#endif /* _NVME_HOST_LM_H */
