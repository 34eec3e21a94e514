// SPDX-License-Identifier: GPL-2.0

//! Runs the codec's shared test cases (the same ones the kernel's KUnit
//! suite runs) under `cargo test`.

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(crate::cases::$name(), Ok(()));
            }
        )*
    };
}

cases!(
    header_round_trip,
    header_rejects_malformed,
    state_length_must_match,
    v0_round_trip,
    v0_rejects_counts_beyond_size,
    v0_validate,
    state_formats,
    secondary_list,
    udmq_entries,
    command_encoding,
    stream_round_trip,
    stream_rejects_malformed,
    compat_rules,
    namespace_rules,
    track_limits,
    track_round_trip,
    crc32c_vectors,
    media_round_trip,
    media_checker_rejects,
    media_compat_rules,
    dirty_set,
);
