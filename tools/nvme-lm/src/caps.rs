// SPDX-License-Identifier: GPL-2.0

//! `nvme-lm caps`: what a controller offers for live migration, read with
//! Identify through admin passthrough on its `/dev/nvmeN`.

use crate::codec::cmd::AdminCmd;
use crate::codec::identify::{
    SecondaryList,
    StateFormats,
    CNS_SECONDARY_CONTROLLER_LIST,
    CNS_SUPPORTED_STATE_FORMATS,
    ID_CTRL_OACS,
    OACS_HMLM, //
};
use crate::passthru::Passthru;
use std::fmt::Write;

fn identify(p: &Passthru, cns: u8) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 4096];
    let c = p
        .admin(&AdminCmd::identify(cns, 0), Some(&mut buf))
        .map_err(|e| e.to_string())?;
    if c.code() != 0 {
        return Err(format!(
            "Identify CNS {cns:#x}: NVMe status {:#x}",
            c.status
        ));
    }
    Ok(buf)
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// A UUID in its usual text form.
pub fn uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// A report of the controller's HMLM capabilities.
pub fn report(p: &Passthru) -> Result<String, String> {
    let id = identify(p, 1)?;
    let oacs = le16(&id, ID_CTRL_OACS);
    let mut out = String::new();
    let w = |out: &mut String, s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(&mut out, format!("cntlid: {}", le16(&id, 78)));
    w(
        &mut out,
        format!(
            "oacs: {oacs:#06x} (host managed live migration: {})",
            if oacs & OACS_HMLM != 0 { "yes" } else { "no" }
        ),
    );
    if oacs & OACS_HMLM == 0 {
        return Ok(out);
    }
    w(
        &mut out,
        format!(
            "trattr: {:#04x} (track user data: {}, track host memory: {})",
            id[576],
            id[576] & 2 != 0,
            id[576] & 1 != 0
        ),
    );
    for (name, off) in [
        ("mcudmq", 578),
        ("mnsudmq", 580),
        ("mcmr", 582),
        ("nmcmr", 584),
        ("mcdqpc", 586),
    ] {
        w(&mut out, format!("{name}: {}", le16(&id, off)));
    }
    let raw = identify(p, CNS_SUPPORTED_STATE_FORMATS)?;
    let f = StateFormats::parse(&raw).map_err(|e| e.reason().to_string())?;
    for i in 1..=f.version_count() {
        w(
            &mut out,
            format!(
                "state format csvi={i}: NVMe version {}",
                f.version(i).unwrap_or(0)
            ),
        );
    }
    for i in 1..=f.uuid_count() {
        if let Some(u) = f.uuid(i) {
            w(
                &mut out,
                format!("state format csuuidi={i}: vendor {}", uuid(&u)),
            );
        }
    }
    let raw = identify(p, CNS_SECONDARY_CONTROLLER_LIST)?;
    let l = SecondaryList::parse(&raw).map_err(|e| e.reason().to_string())?;
    for i in 0..l.len() {
        if let Some(c) = l.get(i) {
            w(
                &mut out,
                format!(
                    "secondary: scid {} vfn {} {} vq {} vi {}",
                    c.scid,
                    c.vfn,
                    if c.online { "online" } else { "offline" },
                    c.vq,
                    c.vi
                ),
            );
        }
    }
    Ok(out)
}
