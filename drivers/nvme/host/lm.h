/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interface between nvme-pci and its live migration service
 * (lm.c). The service's public interface is <linux/nvme-lm.h>.
 */
#ifndef _NVME_HOST_LM_H
#define _NVME_HOST_LM_H

#include <linux/types.h>

struct nvme_ctrl;
struct pci_dev;

#if IS_ENABLED(CONFIG_NVME_HOST_LM)
struct nvme_ctrl *nvme_pci_pf_ctrl(struct pci_dev *vf);
void nvme_lm_handle_aen(struct nvme_ctrl *ctrl, __le16 status, u64 result);
void nvme_lm_pf_remove(struct nvme_ctrl *ctrl);
#else
static inline void nvme_lm_handle_aen(struct nvme_ctrl *ctrl, __le16 status,
				      u64 result)
{
}

static inline void nvme_lm_pf_remove(struct nvme_ctrl *ctrl)
{
}
#endif

#endif /* _NVME_HOST_LM_H */
