// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the L2 guest of the running-guest migration (tests/vm/qemu-
 * migrate.sh): a VM whose only job is I/O through Linux's nvme driver on
 * the passed-through VF, checked block by block.
 *
 * Mounts devtmpfs, says "l2: waiting for /dev/nvme0n1" (where
 * scripts/build-l2.sh snapshots the booted guest) and waits for the VF to
 * be hotplugged, as long as it takes (without one, the guest idles: the same
 * guest without the VF, for comparison); then runs WORKERS
 * processes, each owning BLOCKS 4 KiB blocks of the namespace from BASE on
 * (so WORKERS commands are in flight): write a block with the next
 * generation (a header naming block and generation, a checksum, and a
 * pattern derived from both), read it back, compare; after every round
 * over its blocks, read all of them again and check each against the
 * generation it last wrote. O_DIRECT throughout, so every read is the
 * device's. A line per round ("l2: worker W round R: N blocks verified");
 * any failure prints "l2: FAIL ..." and stops that worker.
 *
 * One more worker, the reader, checks what the device wrote into memory
 * long after it wrote it, as a migration needs: it writes READER_BLOCKS
 * blocks once, then in round R reads block (k + R) mod READER_BLOCKS into
 * buffer k, each buffer a page of its own that only the device writes,
 * and only after all of them checks every buffer. A round that spans the
 * switchover checks on the destination data the device wrote on the
 * source; a DMA write the dirty tracking missed leaves a buffer holding the
 * previous round's block there. Each round it also sends an admin command
 * (Identify Controller through the controller's character device) and
 * compares the answer with the first one (the serial number may change,
 * with the subsystem), so the admin queue, too, must work after a
 * migration.
 *
 * Built against the kernel's own nolibc (tools/include/nolibc), static and
 * tiny: every byte of the initramfs costs boot time under TCG inside TCG.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BS		4096
#define BLOCKS		2
#define WORKERS		2
#define READER_BLOCKS	5
#define READER_BUFS	4
#define BASE		(48ULL << 20)
#define MAGIC		0x4b42324cU /* "L2BK" */
#define DEV		"/dev/nvme0n1"
#define CTRL		"/dev/nvme0"

struct hdr {
	uint32_t magic;
	uint32_t block;
	uint32_t gen;
	uint32_t sum;
};

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (write(1, buf, n) < 0)
		return;
}

static void idle(void)
{
	struct timespec t = { 3600, 0 };

	for (;;)
		nanosleep(&t, NULL);
}

/* Block I/O at a byte offset; each worker opens the device itself. */
static int block_io(int fd, void *buf, off_t off, int write_it)
{
	ssize_t n;

	if (lseek(fd, off, SEEK_SET) != off)
		return -1;
	n = write_it ? write(fd, buf, BS) : read(fd, buf, BS);
	if (n >= 0 && n != BS)
		errno = EIO;
	return n == BS ? 0 : -1;
}

/* FNV-1a over the payload after the header. */
static uint32_t checksum(const uint8_t *b)
{
	uint32_t h = 2166136261U;

	for (size_t i = sizeof(struct hdr); i < BS; i++)
		h = (h ^ b[i]) * 16777619U;
	return h;
}

static void fill(uint8_t *b, uint32_t block, uint32_t gen)
{
	struct hdr *h = (struct hdr *)b;
	uint64_t x = ((uint64_t)block << 32 | gen) * 0x9e3779b97f4a7c15ULL | 1;

	for (size_t i = sizeof(*h); i < BS; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(b + i, &x, 8);
	}
	h->magic = MAGIC;
	h->block = block;
	h->gen = gen;
	h->sum = checksum(b);
}

/* Checks a block read back: its own checksum, then what the model says. */
static int check(const uint8_t *got, uint8_t *want, uint32_t block,
		 uint32_t gen, const char *when)
{
	const struct hdr *h = (const struct hdr *)got;

	if (h->magic != MAGIC || h->sum != checksum(got)) {
		say("l2: FAIL block %u (%s): bad magic or checksum\n", block, when);
		return -1;
	}
	if (h->block != block || h->gen != gen) {
		say("l2: FAIL block %u (%s): holds block %u generation %u, expected generation %u\n",
		    block, when, h->block, h->gen, gen);
		return -1;
	}
	fill(want, block, gen);
	if (memcmp(got, want, BS)) {
		say("l2: FAIL block %u (%s): data differs\n", block, when);
		return -1;
	}
	return 0;
}

/* O_DIRECT buffers; each worker is its own process with its own copy. */
static uint8_t wb[BS] __attribute__((aligned(BS)));
static uint8_t rb[BS] __attribute__((aligned(BS)));
static uint8_t eb[BS] __attribute__((aligned(BS)));
/* The reader's buffers: pages only the device writes. */
static uint8_t kept[READER_BUFS][BS] __attribute__((aligned(BS)));
static uint8_t id_first[BS] __attribute__((aligned(BS)));
static uint8_t id_now[BS] __attribute__((aligned(BS)));

/* Identify Controller on the admin queue; 0 or -1 (errno, or EIO). */
static int identify(int fd, uint8_t *buf)
{
	struct nvme_passthru_cmd cmd = {
		.opcode = 0x06,
		.addr = (uint64_t)(uintptr_t)buf,
		.data_len = BS,
		.cdw10 = 1,
	};
	int ret = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);

	if (ret > 0)
		errno = EIO;
	return ret ? -1 : 0;
}

static int reader(int w)
{
	uint32_t first = WORKERS * BLOCKS;
	uint64_t round;
	int fd, ctrl;

	fd = open(DEV, O_RDWR | O_DIRECT);
	ctrl = open(CTRL, O_RDONLY);
	if (fd < 0 || ctrl < 0) {
		say("l2: FAIL reader: open: %s\n", strerror(errno));
		return 1;
	}
	if (identify(ctrl, id_first)) {
		say("l2: FAIL reader: Identify: %s\n", strerror(errno));
		return 1;
	}
	for (uint32_t j = 0; j < READER_BLOCKS; j++) {
		fill(wb, first + j, 1);
		if (block_io(fd, wb, BASE + (off_t)(first + j) * BS, 1)) {
			say("l2: FAIL block %u: write: %s\n", first + j, strerror(errno));
			return 1;
		}
	}
	for (round = 1;; round++) {
		for (uint32_t k = 0; k < READER_BUFS; k++) {
			uint32_t block = first + (k + round) % READER_BLOCKS;

			if (block_io(fd, kept[k], BASE + (off_t)block * BS, 0)) {
				say("l2: FAIL block %u: read: %s\n", block, strerror(errno));
				return 1;
			}
		}
		for (uint32_t k = 0; k < READER_BUFS; k++) {
			uint32_t block = first + (k + round) % READER_BLOCKS;

			if (check(kept[k], eb, block, 1, "kept in memory"))
				return 1;
		}
		memset(id_now, 0, BS);
		if (identify(ctrl, id_now)) {
			say("l2: FAIL reader: Identify: %s\n", strerror(errno));
			return 1;
		}
		/*
		 * VID, SSVID and the model: the same kind of controller. The
		 * serial number is the subsystem's: a migration to another
		 * host's drive (local storage) changes it, once.
		 */
		if (memcmp(id_now, id_first, 4) || memcmp(id_now + 24, id_first + 24, 40)) {
			say("l2: FAIL reader: Identify Controller changed (VID, SSVID, model)\n");
			return 1;
		}
		if (memcmp(id_now + 4, id_first + 4, 20)) {
			char was[21] = { 0 }, now[21] = { 0 };

			memcpy(was, id_first + 4, 20);
			memcpy(now, id_now + 4, 20);
			say("l2: reader: serial number '%s', was '%s' (another subsystem)\n",
			    now, was);
			memcpy(id_first + 4, id_now + 4, 20);
		}
		say("l2: worker %d round %llu: %d blocks verified\n", w,
		    (unsigned long long)round, READER_BUFS);
	}
}

static int worker(int w)
{
	uint32_t gen[BLOCKS] = { 0 };
	uint64_t round;
	int fd;

	fd = open(DEV, O_RDWR | O_DIRECT);
	if (fd < 0) {
		say("l2: FAIL worker %d: open: %s\n", w, strerror(errno));
		return 1;
	}
	for (round = 1;; round++) {
		for (uint32_t i = 0; i < BLOCKS; i++) {
			uint32_t block = w * BLOCKS + i;
			off_t off = BASE + (off_t)block * BS;

			fill(wb, block, ++gen[i]);
			if (block_io(fd, wb, off, 1)) {
				say("l2: FAIL block %u: write: %s\n", block, strerror(errno));
				return 1;
			}
			if (block_io(fd, rb, off, 0)) {
				say("l2: FAIL block %u: read: %s\n", block, strerror(errno));
				return 1;
			}
			if (check(rb, eb, block, gen[i], "after its write"))
				return 1;
		}
		for (uint32_t i = 0; i < BLOCKS; i++) {
			uint32_t block = w * BLOCKS + i;

			if (block_io(fd, rb, BASE + (off_t)block * BS, 0)) {
				say("l2: FAIL block %u: read: %s\n", block, strerror(errno));
				return 1;
			}
			if (check(rb, eb, block, gen[i], "round check"))
				return 1;
		}
		say("l2: worker %d round %llu: %d blocks verified\n", w,
		    (unsigned long long)round, BLOCKS);
	}
}

int main(void)
{
	struct timespec t = { 0, 100 * 1000 * 1000 };
	struct stat st;
	int i;

	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	/* The VF is hotplugged into the booted guest: wait for it as long as
	 * the harness lets us.
	 */
	say("l2: waiting for %s\n", DEV);
	while (stat(DEV, &st))
		nanosleep(&t, NULL);
	say("l2: %s present, %d workers\n", DEV, WORKERS + 1);
	for (i = 0; i <= WORKERS; i++) {
		if (fork() == 0)
			_exit(i < WORKERS ? worker(i) : reader(i));
	}
	for (;;) {
		int status;
		pid_t pid = wait(&status);

		if (pid < 0)
			idle();
		say("l2: worker process %d ended (status %d)\n", pid, status);
	}
}
