// SPDX-License-Identifier: GPL-2.0

//! Tests that run inside the test VM against the emulated controller, with
//! KTAP output. Each case returns `Err(reason)` instead of panicking.

pub mod cdq;
pub mod concurrency;
pub mod dma_logging;
pub mod faults;
pub mod guest;
pub mod hmlm;
pub mod io;
pub mod migration;
pub mod service;

/// The result of one test case.
pub type CaseResult = Result<(), String>;

/// Turns a condition into a case result.
pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// A KTAP document being written to stdout.
pub struct Ktap {
    n: usize,
    failed: usize,
    filter: Option<String>,
}

impl Ktap {
    /// Prints the header and the plan.
    pub fn begin(suite: &str, plan: usize, filter: Option<String>) -> Self {
        println!("KTAP version 1");
        println!("# Subtest: {suite}");
        println!("1..{plan}");
        Self {
            n: 0,
            failed: 0,
            filter,
        }
    }

    /// Runs one case and prints its result line (a skipped case when the
    /// filter does not match its name).
    pub fn case(&mut self, name: &str, f: impl FnOnce() -> CaseResult) {
        self.n += 1;
        if let Some(filter) = &self.filter {
            if !name.contains(filter.as_str()) {
                println!("ok {} {name} # SKIP filtered out", self.n);
                return;
            }
        }
        let start = std::time::Instant::now();
        match f() {
            Ok(()) => println!("ok {} {name}", self.n),
            Err(e) => {
                self.failed += 1;
                for line in e.lines() {
                    println!("# {line}");
                }
                let first = e
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>();
                println!("not ok {} {name} # {first}", self.n);
                eprintln!("FAILED: {name}: {e}");
            }
        }
        println!("# {name}: {:.2} s", start.elapsed().as_secs_f64());
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.failed
    }
}

/// The changed ranges (SLBA, NLB 0's based) of UDMQ entries, sorted;
/// markers left out.
pub fn udmq_ranges(v: &[crate::codec::udmq::Entry]) -> Vec<(u64, u32)> {
    let mut r: Vec<_> = v
        .iter()
        .filter(|e| e.change == crate::codec::udmq::Change::Range)
        .map(|e| (e.slba, e.nlb))
        .collect();
    r.sort_unstable();
    r
}

/// `format!`-style `Err` for case bodies.
#[macro_export]
macro_rules! fail {
    ($($t:tt)*) => { return Err(format!($($t)*)) };
}
