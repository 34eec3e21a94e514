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
 *  1a. Version 3 only (media migration, NVME_VFIO_COMPAT_F_MEDIA set): the
 *     namespaces' data. For each namespace of the compatibility record,
 *     once, one NVME_VFIO_REC_NS_DESC (struct nvme_vfio_ns_desc, the same
 *     LBA size and capacity as its compatibility entry) before any range
 *     of it; then any number of NVME_VFIO_REC_DATA (struct nvme_vfio_data
 *     and @nlb << @lbads data bytes, at most NVME_VFIO_MAX_DATA, with
 *     their CRC32C) and NVME_VFIO_REC_ZERO (struct nvme_vfio_zero: LBAs
 *     that read as zeroes), each within the namespace; a later range of an
 *     LBA supersedes an earlier one.
 *  2. NVME_VFIO_REC_CTRL_STATE: the controller state exactly as NVMe
 *     Migration Receive (Get Controller State) returned it: a 48-byte
 *     header, NVMe-defined state (version in @nvme_version of the
 *     compatibility record) and vendor-specific state (format
 *     @vendor_uuid, all zero if none).
 *  3. NVME_VFIO_REC_END: a __le32 CRC32C (Castagnoli) of every byte of the
 *     stream before this record; in version 3, of every byte before it but
 *     the data bytes of NVME_VFIO_REC_DATA records (each covered by its own
 *     @crc32c), so that every byte is covered once.
 *
 * A source without media migration writes version 2 (no media records,
 * NVME_VFIO_COMPAT_F_MEDIA clear), which destinations of either version
 * read; with it, version 3. Media migration must be on at both ends or at
 * neither.
 *
 * A reader skips a record with NVME_VFIO_REC_F_OPTIONAL whose tag it does
 * not know, and refuses an unknown tag without it. The records above are
 * mandatory, appear once each and in this order, and carry no flags.
 */
#ifndef _UAPI_LINUX_NVME_VFIO_H
#define _UAPI_LINUX_NVME_VFIO_H

#include <linux/types.h>

#define NVME_VFIO_STREAM_MAGIC		"NVMEVFIO"
#define NVME_VFIO_STREAM_VERSION	3	/* media records */
#define NVME_VFIO_STREAM_VERSION_NO_MEDIA	2

struct nvme_vfio_stream_header {
	__u8	magic[8];	/* NVME_VFIO_STREAM_MAGIC */
	__le16	version;	/* NVME_VFIO_STREAM_VERSION{,_NO_MEDIA} */
	__le16	flags;		/* 0 */
	__le32	header_len;	/* 16 */
};

enum nvme_vfio_record_flags {
	NVME_VFIO_REC_F_OPTIONAL	= 1,	/* skip if the tag is unknown */
};

enum nvme_vfio_record_tag {
	NVME_VFIO_REC_COMPAT		= 1,
	NVME_VFIO_REC_CTRL_STATE	= 2,
	NVME_VFIO_REC_NS_DESC		= 3,	/* version 3 */
	NVME_VFIO_REC_DATA		= 4,	/* version 3 */
	NVME_VFIO_REC_ZERO		= 5,	/* version 3 */
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
 * guest's storage. With NVME_VFIO_COMPAT_F_MEDIA in @flags (version 3),
 * the storage moves in the stream instead: the subsystem may differ, and
 * the destination's namespaces need only the same NSIDs, LBA data and
 * metadata sizes and at least the source's capacity.
 */
#define NVME_VFIO_COMPAT_F_MEDIA	0x01	/* @flags: media migration */

struct nvme_vfio_compat {
	__le16	vendor;
	__le16	device;
	__le16	nvme_version;
	__le16	io_queues;
	__le16	vectors;
	__le16	mqes;
	__u8	nr_namespaces;
	__u8	flags;		/* NVME_VFIO_COMPAT_F_*; other bits 0 */
	__u8	rsvd14[2];
	__u8	vendor_uuid[16];
	__u8	model[40];
	__u8	firmware[8];
	__le64	nqn_hash;
	__u8	rsvd88[8];
	struct nvme_vfio_namespace namespaces[NVME_VFIO_MAX_NAMESPACES];
};

/* Largest data of one NVME_VFIO_REC_DATA record. */
#define NVME_VFIO_MAX_DATA		0x100000	/* 1 MiB */

/* NVME_VFIO_REC_NS_DESC: the namespace whose ranges follow. */
struct nvme_vfio_ns_desc {
	__le32	nsid;
	__u8	lbads;
	__u8	rsvd5;
	__le16	rsvd6;
	__le64	nsze;
};

/* NVME_VFIO_REC_DATA: @nlb (1-based) LBAs from @slba; the data follows. */
struct nvme_vfio_data {
	__le32	nsid;
	__le32	nlb;
	__le64	slba;
	__le32	crc32c;		/* of the data bytes */
	__le32	rsvd20;
};

/* NVME_VFIO_REC_ZERO: @nlb (1-based) LBAs from @slba read as zeroes. */
struct nvme_vfio_zero {
	__le32	nsid;
	__le32	rsvd4;
	__le64	slba;
	__le64	nlb;
};

#endif /* _UAPI_LINUX_NVME_VFIO_H */
