/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Migration data stream of nvme_vfio_pci, the VFIO variant driver of NVMe
 * SR-IOV virtual functions.
 *
 * VMMs treat the stream as opaque bytes (VFIO migration uAPI v2); this
 * header documents it for tools that inspect or check streams. All fields
 * are little endian.
 *
 * A stream is a struct nvme_vfio_stream_header, then records, each a
 * struct nvme_vfio_record_header followed by @size payload bytes and zero
 * padding to a multiple of 8 bytes:
 *
 *  1. NVME_VFIO_REC_COMPAT: struct nvme_vfio_compat. In PRE_COPY it is the
 *     whole of the initial data, so that a destination can refuse an
 *     incompatible source before the source stops.
 *  2. NVME_VFIO_REC_CTRL_STATE: the controller state exactly as NVMe
 *     Migration Receive (Get Controller State) returned it: a 48-byte
 *     header, NVMe-defined state (version in @nvme_version of the
 *     compatibility record) and vendor-specific state (format
 *     @vendor_uuid, all zero if none).
 *  3. NVME_VFIO_REC_END: a __le32 CRC32C (Castagnoli) of every byte of the
 *     stream before this record.
 *
 * A reader skips a record with NVME_VFIO_REC_F_OPTIONAL whose tag it does
 * not know, and refuses an unknown tag without it. The records above are
 * mandatory, appear once each and in this order, and carry no flags.
 */
#ifndef _UAPI_LINUX_NVME_VFIO_H
#define _UAPI_LINUX_NVME_VFIO_H

#include <linux/types.h>

#define NVME_VFIO_STREAM_MAGIC		"NVMEVFIO"
#define NVME_VFIO_STREAM_VERSION	2

struct nvme_vfio_stream_header {
	__u8	magic[8];	/* NVME_VFIO_STREAM_MAGIC */
	__le16	version;	/* NVME_VFIO_STREAM_VERSION */
	__le16	flags;		/* 0 */
	__le32	header_len;	/* 16 */
};

enum nvme_vfio_record_flags {
	NVME_VFIO_REC_F_OPTIONAL	= 1,	/* skip if the tag is unknown */
};

enum nvme_vfio_record_tag {
	NVME_VFIO_REC_COMPAT		= 1,
	NVME_VFIO_REC_CTRL_STATE	= 2,
	NVME_VFIO_REC_END		= 0xfffffff0,
};

struct nvme_vfio_record_header {
	__le64	size;		/* payload bytes, padding excluded */
	__le32	flags;		/* NVME_VFIO_REC_F_* */
	__le32	tag;		/* enum nvme_vfio_record_tag */
};

#define NVME_VFIO_MAX_NAMESPACES	8

/*
 * A namespace attached to the source's controller: NSID, LBA data size
 * (power of two) and metadata bytes of the LBA format in use, size in
 * logical blocks, NGUID and EUI-64 (zero if the namespace has none).
 */
struct nvme_vfio_namespace {
	__le32	nsid;
	__u8	lbads;
	__u8	rsvd5;
	__le16	ms;
	__le64	nsze;
	__u8	nguid[16];
	__u8	eui64[8];
};

/*
 * What a destination must match: the same PCI device, controller model,
 * firmware and NVM subsystem (FNV-1a 64-bit hash of the subsystem NQN),
 * the same controller state formats, at least the source's queue and
 * interrupt resources and queue size, and exactly the namespaces attached
 * to the source's controller (@nr_namespaces entries of @namespaces, in
 * ascending NSID order; the others zero): a migration never changes a
 * guest's storage.
 */
struct nvme_vfio_compat {
	__le16	vendor;
	__le16	device;
	__le16	nvme_version;
	__le16	io_queues;
	__le16	vectors;
	__le16	mqes;
	__u8	nr_namespaces;
	__u8	rsvd13[3];
	__u8	vendor_uuid[16];
	__u8	model[40];
	__u8	firmware[8];
	__le64	nqn_hash;
	__u8	rsvd88[8];
	struct nvme_vfio_namespace namespaces[NVME_VFIO_MAX_NAMESPACES];
};

#endif /* _UAPI_LINUX_NVME_VFIO_H */
