// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm inspect`: decode an nvme_vfio_pci migration stream (or a bare
//! controller state) with the driver's own codec, and say what it holds.

use crate::codec::state::{
    ControllerState,
    QueueStateV0, //
};
use crate::codec::stream::{
    parse_header,
    Stream, //
};
use std::fmt::Write;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Describes a controller state.
pub fn describe_state(st: &[u8], out: &mut String) -> Result<(), String> {
    let cs = ControllerState::parse(st).map_err(|e| format!("controller state: {}", e.reason()))?;
    let _ = writeln!(
        out,
        "controller state: {} bytes, version {}, {}suspended, NVMe part {} bytes, vendor part {} bytes",
        st.len(),
        cs.header.version,
        if cs.header.suspended { "" } else { "not " },
        cs.nvme.len(),
        cs.vendor.len()
    );
    if cs.nvme.is_empty() {
        return Ok(());
    }
    let v0 = QueueStateV0::parse(cs.nvme).map_err(|e| format!("NVMe state: {}", e.reason()))?;
    for i in 0..v0.sq_count() {
        let q = v0.sq(i).map_err(|e| e.reason().to_string())?;
        let _ = writeln!(
            out,
            "  sq {:3} -> cq {:3}: {:5} entries at {:#x}, head {} tail {}",
            q.qid,
            q.cqid,
            u32::from(q.qsize) + 1,
            q.prp1,
            q.head,
            q.tail
        );
    }
    for i in 0..v0.cq_count() {
        let q = v0.cq(i).map_err(|e| e.reason().to_string())?;
        let irq = if q.interrupts {
            format!("vector {}", q.vector)
        } else {
            "polled".into()
        };
        let _ = writeln!(
            out,
            "  cq {:3}: {:5} entries at {:#x}, head {} tail {}, slot 0 phase {}, {irq}",
            q.qid,
            u32::from(q.qsize) + 1,
            q.prp1,
            q.head,
            q.tail,
            u8::from(q.slot0_phase)
        );
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Describes a stream (or, if it has no stream header, a controller state).
pub fn describe(buf: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    if parse_header(buf).is_err() {
        describe_state(buf, &mut out)?;
        return Ok(out);
    }
    let s = Stream::parse(buf).map_err(|e| format!("stream: {}", e.reason()))?;
    let c = &s.compat;
    let _ = writeln!(
        out,
        "nvme_vfio_pci stream v{}: {} bytes, checksum ok",
        s.version,
        buf.len()
    );
    let _ = writeln!(
        out,
        "source: {:04x}:{:04x} model '{}' firmware '{}' subsystem {:016x}",
        c.vendor,
        c.device,
        text(&c.model),
        text(&c.firmware),
        c.nqn_hash
    );
    let _ = writeln!(
        out,
        "needs: NVMe state version {}, vendor format {}, {} I/O queue pairs, {} vectors, MQES {}",
        c.nvme_version,
        if c.vendor_uuid == [0; 16] {
            "none".to_string()
        } else {
            crate::caps::uuid(&c.vendor_uuid)
        },
        c.io_queues,
        c.vectors,
        c.mqes
    );
    for ns in c.namespaces.as_slice() {
        let _ = writeln!(
            out,
            "namespace: NSID {} NGUID {} EUI-64 {}, {} blocks of {} bytes + {} metadata",
            ns.nsid,
            hex(&ns.nguid),
            hex(&ns.eui64),
            ns.nsze,
            1u64 << ns.lbads,
            ns.ms
        );
    }
    describe_state(s.state, &mut out)?;
    Ok(out)
}
