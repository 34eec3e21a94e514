// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of the pure logic of the NVMe live migration service.
 * Included by lm.c when CONFIG_NVME_HOST_LM_KUNIT_TEST is set.
 */

#include <kunit/test.h>

static void nvme_lm_put_entry(u8 *list, int i, u16 scid, u16 vfn)
{
	u8 *e = list + NVME_LM_SECONDARY_ENTRY_SIZE * (i + 1);

	put_unaligned_le16(scid, e);
	put_unaligned_le16(vfn, e + 8);
}

/* The SCID of the entry for VF @vfn, or -ENOENT. */
static int nvme_lm_test_scid(const u8 *list, size_t len, u16 vfn)
{
	const u8 *e = nvme_lm_secondary_entry(list, len, NVME_LM_SEC_VFN, vfn);

	return e ? get_unaligned_le16(e + NVME_LM_SEC_SCID) : -ENOENT;
}

static void nvme_lm_test_secondary_entry(struct kunit *test)
{
	u8 *list = kunit_kzalloc(test, NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, list);
	list[0] = 3;
	/* Out of VF order: the position in the list means nothing. */
	nvme_lm_put_entry(list, 0, 0x42, 3);
	nvme_lm_put_entry(list, 1, 0x40, 1);
	nvme_lm_put_entry(list, 2, 0x41, 2);

	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, NVME_IDENTIFY_DATA_SIZE, 1), 0x40);
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, NVME_IDENTIFY_DATA_SIZE, 3), 0x42);
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, NVME_IDENTIFY_DATA_SIZE, 4), -ENOENT);
	/* Entries beyond the count, or beyond the buffer, are not read. */
	list[0] = 1;
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, NVME_IDENTIFY_DATA_SIZE, 2), -ENOENT);
	list[0] = 3;
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, 3 * 32, 2), -ENOENT);
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, 3 * 32, 1), 0x40);
	/* A count above 127 is clamped to the list's capacity. */
	list[0] = 255;
	KUNIT_EXPECT_EQ(test, nvme_lm_test_scid(list, NVME_IDENTIFY_DATA_SIZE, 2), 0x41);
}

static void nvme_lm_test_secondary_next(struct kunit *test)
{
	u8 *list = kunit_kzalloc(test, NVME_IDENTIFY_DATA_SIZE, GFP_KERNEL);
	u32 next = 0;

	KUNIT_ASSERT_NOT_NULL(test, list);
	/* A page that is not full need not be the last. */
	list[0] = 2;
	nvme_lm_put_entry(list, 0, 5, 1);
	nvme_lm_put_entry(list, 1, 9, 2);
	KUNIT_EXPECT_TRUE(test, nvme_lm_secondary_next(list, &next));
	KUNIT_EXPECT_EQ(test, next, 10);
	/* A full page continues after its 127th entry. */
	list[0] = 127;
	nvme_lm_put_entry(list, 126, 300, 127);
	KUNIT_EXPECT_TRUE(test, nvme_lm_secondary_next(list, &next));
	KUNIT_EXPECT_EQ(test, next, 301);
	/* An empty page ends the list. */
	list[0] = 0;
	KUNIT_EXPECT_FALSE(test, nvme_lm_secondary_next(list, &next));
	/* So do a page that does not move forward and the last possible ID. */
	list[0] = 1;
	nvme_lm_put_entry(list, 0, 200, 3);
	KUNIT_EXPECT_FALSE(test, nvme_lm_secondary_next(list, &next));
	nvme_lm_put_entry(list, 0, U16_MAX, 3);
	KUNIT_EXPECT_FALSE(test, nvme_lm_secondary_next(list, &next));
}

static void nvme_lm_test_errno(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CTRL_SUSPENDED), -EALREADY);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CTRL_SUSPENDED |
					    NVME_STATUS_DNR), -EALREADY);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CTRL_NOT_SUSPENDED), -EINVAL);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_INVALID_FIELD), -EINVAL);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CMD_SEQ_ERROR), -EBUSY);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CTRL_ID_INVALID), -ENODEV);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_INVALID_CDQ), -ENOENT);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_CDQ_FULL), -ENOSPC);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_NOT_ENOUGH_RESOURCES),
			-ENOSPC);
	KUNIT_EXPECT_EQ(test, nvme_lm_errno(NVME_SC_INTERNAL), -EIO);
}

static struct kunit_case nvme_lm_test_cases[] = {
	KUNIT_CASE(nvme_lm_test_secondary_entry),
	KUNIT_CASE(nvme_lm_test_secondary_next),
	KUNIT_CASE(nvme_lm_test_errno),
	{}
};

static struct kunit_suite nvme_lm_test_suite = {
	.name = "nvme_host_lm",
	.test_cases = nvme_lm_test_cases,
};

kunit_test_suite(nvme_lm_test_suite);
