// SPDX-License-Identifier: GPL-2.0
/*
 * The stream layout of include/uapi/linux/nvme_vfio.h, checked against the
 * byte offsets the shared codec (drivers/vfio/pci/nvme/codec/stream.rs)
 * reads and writes. Compiled against the kernel's exported headers.
 */
#include <linux/nvme_vfio.h>
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(struct nvme_vfio_stream_header) == 16, "stream header");
_Static_assert(offsetof(struct nvme_vfio_stream_header, version) == 8, "version");
_Static_assert(offsetof(struct nvme_vfio_stream_header, header_len) == 12, "header_len");
_Static_assert(sizeof(struct nvme_vfio_record_header) == 16, "record header");
_Static_assert(offsetof(struct nvme_vfio_record_header, flags) == 8, "flags");
_Static_assert(offsetof(struct nvme_vfio_record_header, tag) == 12, "tag");
_Static_assert(sizeof(struct nvme_vfio_compat) == 96 + 8 * 40, "compat");
_Static_assert(offsetof(struct nvme_vfio_compat, nr_namespaces) == 12, "nr_namespaces");
_Static_assert(offsetof(struct nvme_vfio_compat, namespaces) == 96, "namespaces");
_Static_assert(NVME_VFIO_MAX_NAMESPACES == 8, "max namespaces");
_Static_assert(sizeof(struct nvme_vfio_namespace) == 40, "namespace");
_Static_assert(offsetof(struct nvme_vfio_namespace, lbads) == 4, "lbads");
_Static_assert(offsetof(struct nvme_vfio_namespace, ms) == 6, "ms");
_Static_assert(offsetof(struct nvme_vfio_namespace, nsze) == 8, "nsze");
_Static_assert(offsetof(struct nvme_vfio_namespace, nguid) == 16, "nguid");
_Static_assert(offsetof(struct nvme_vfio_namespace, eui64) == 32, "eui64");
_Static_assert(offsetof(struct nvme_vfio_compat, mqes) == 10, "mqes");
_Static_assert(offsetof(struct nvme_vfio_compat, vendor_uuid) == 16, "vendor_uuid");
_Static_assert(offsetof(struct nvme_vfio_compat, model) == 32, "model");
_Static_assert(offsetof(struct nvme_vfio_compat, firmware) == 72, "firmware");
_Static_assert(offsetof(struct nvme_vfio_compat, nqn_hash) == 80, "nqn_hash");
_Static_assert(NVME_VFIO_REC_COMPAT == 1 && NVME_VFIO_REC_CTRL_STATE == 2 &&
	       NVME_VFIO_REC_END == 0xfffffff0, "tags");
_Static_assert(offsetof(struct nvme_vfio_compat, flags) == 13, "compat flags");
_Static_assert(NVME_VFIO_COMPAT_F_MEDIA == 1, "media flag");
_Static_assert(NVME_VFIO_REC_NS_DESC == 3 && NVME_VFIO_REC_DATA == 4 &&
	       NVME_VFIO_REC_ZERO == 5, "media tags");
_Static_assert(NVME_VFIO_MAX_DATA == 1 << 20, "max data");
_Static_assert(sizeof(struct nvme_vfio_ns_desc) == 16, "ns_desc");
_Static_assert(offsetof(struct nvme_vfio_ns_desc, lbads) == 4, "ns_desc lbads");
_Static_assert(offsetof(struct nvme_vfio_ns_desc, nsze) == 8, "ns_desc nsze");
_Static_assert(sizeof(struct nvme_vfio_data) == 24, "data");
_Static_assert(offsetof(struct nvme_vfio_data, nlb) == 4, "data nlb");
_Static_assert(offsetof(struct nvme_vfio_data, slba) == 8, "data slba");
_Static_assert(offsetof(struct nvme_vfio_data, crc32c) == 16, "data crc32c");
_Static_assert(sizeof(struct nvme_vfio_zero) == 24, "zero");
_Static_assert(offsetof(struct nvme_vfio_zero, slba) == 8, "zero slba");
_Static_assert(offsetof(struct nvme_vfio_zero, nlb) == 16, "zero nlb");

int main(void)
{
	return strlen(NVME_VFIO_STREAM_MAGIC) == 8 && NVME_VFIO_STREAM_VERSION == 3 &&
	       NVME_VFIO_STREAM_VERSION_NO_MEDIA == 2 ? 0 : 1;
}
