// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm inspect` on streams and states made with the codec.

use nvme_lm::codec::namespaces::{
    Namespace,
    Namespaces, //
};
use nvme_lm::codec::state::{
    encode_v0,
    CqState,
    Header,
    SqState, //
};
use nvme_lm::codec::stream::{
    fnv1a64,
    write_stream,
    Compat, //
};
use nvme_lm::inspect::describe;

fn state() -> Vec<u8> {
    let sq = SqState {
        prp1: 0x20_0000,
        qsize: 31,
        qid: 1,
        cqid: 1,
        contiguous: true,
        head: 3,
        tail: 9,
        ..Default::default()
    };
    let cq = CqState {
        prp1: 0x10_0000,
        qsize: 31,
        qid: 1,
        head: 2,
        tail: 3,
        contiguous: true,
        slot0_phase: true,
        ..Default::default()
    };
    let mut body = vec![0u8; 56];
    let n = encode_v0(&[sq], &[cq], &mut body).expect("v0");
    let h = Header {
        version: 0,
        suspended: true,
        nvme_dwords: (n / 4) as u32,
        vendor_dwords: 2,
    };
    let mut st = h.encode().to_vec();
    st.extend_from_slice(&body[..n]);
    st.extend_from_slice(&[0; 8]);
    st
}

#[test]
fn describes_a_stream() {
    let st = state();
    let compat = Compat {
        vendor: 0x1b36,
        device: 0x0010,
        nvme_version: 0,
        io_queues: 2,
        vectors: 2,
        mqes: 2047,
        vendor_uuid: [0; 16],
        model: *b"QEMU NVMe Ctrl                          ",
        firmware: *b"10.0.13 ",
        nqn_hash: fnv1a64(b"nqn"),
        media: false,
        namespaces: Namespaces::new(&[Namespace {
            nsid: 1,
            lbads: 9,
            ms: 0,
            nsze: 131072,
            nguid: [0x11; 16],
            eui64: [0; 8],
        }])
        .expect("namespaces"),
    };
    let mut buf = vec![0u8; 1024];
    let len = write_stream(&mut buf, &compat, &st).expect("stream");
    let r = describe(&buf[..len]).expect("describe");
    assert!(r.contains("stream v2"), "{r}");
    assert!(r.contains("NSID 1"), "{r}");
    assert!(
        r.contains("model 'QEMU NVMe Ctrl' firmware '10.0.13'"),
        "{r}"
    );
    assert!(r.contains("vendor format none, 2 I/O queue pairs"), "{r}");
    assert!(
        r.contains("suspended, NVMe part 56 bytes, vendor part 8 bytes"),
        "{r}"
    );
    assert!(
        r.contains("sq   1 -> cq   1:    32 entries at 0x200000, head 3 tail 9"),
        "{r}"
    );
    assert!(
        r.contains("cq   1:    32 entries at 0x100000, head 2 tail 3, slot 0 phase 1, polled"),
        "{r}"
    );
    buf[40] ^= 1;
    assert!(
        describe(&buf[..len]).is_err(),
        "a corrupt stream was described"
    );
}

#[test]
fn describes_a_bare_state() {
    let r = describe(&state()).expect("describe");
    assert!(r.starts_with("controller state: 112 bytes"), "{r}");
    assert!(describe(&state()[..100]).is_err());
}
