// SPDX-License-Identifier: GPL-2.0

//! The arcs of the VFIO migration state machine, as NVMe actions: a pure
//! table, so that every arc can be checked without a device (KUnit suite
//! `nvme_vfio_pci_fsm`). [`crate::migration`] carries the actions out.

use kernel::{prelude::*, vfio::State};

/// What one step of the state machine does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Suspend the controller (no new DMA; fetched commands complete).
    Suspend,
    /// Resume the controller.
    Resume,
    /// Nothing: the two states are the same for an NVMe controller.
    Nothing,
    /// Open a saving session: PRE_COPY data only, or (`stopped`) the
    /// whole stream at once.
    OpenSave {
        /// The controller is stopped: the whole stream is ready.
        stopped: bool,
    },
    /// PRE_COPY* → STOP_COPY: stop the controller if needed, then complete
    /// the open session's stream.
    StopCopy,
    /// End the saving session.
    EndSave,
    /// Open a resuming session.
    OpenResume,
    /// Check the written stream, then load it.
    Load,
}

/// Whether the controller runs (fetches commands, may DMA) in `state`:
/// the actions keep it suspended in every other state.
pub(crate) fn controller_runs(state: State) -> bool {
    matches!(state, State::Running | State::PreCopy)
}

/// The action of the single step `cur` → `next`; `None` for a step the
/// VFIO core never requests (the uAPI forbids it or walks it in steps).
pub(crate) fn action(cur: State, next: State) -> Option<Action> {
    use State::*;
    Some(match (cur, next) {
        (Running, RunningP2p) | (PreCopy, PreCopyP2p) | (Running, Stop) => Action::Suspend,
        (RunningP2p, Running) | (PreCopyP2p, PreCopy) | (Stop, Running) => Action::Resume,
        (RunningP2p, Stop) | (Stop, RunningP2p) => Action::Nothing,
        (Running, PreCopy) | (RunningP2p, PreCopyP2p) => Action::OpenSave { stopped: false },
        (Stop, StopCopy) => Action::OpenSave { stopped: true },
        (PreCopy, StopCopy) | (PreCopyP2p, StopCopy) => Action::StopCopy,
        (PreCopy, Running) | (PreCopyP2p, RunningP2p) | (StopCopy, Stop) => Action::EndSave,
        (Stop, Resuming) => Action::OpenResume,
        (Resuming, Stop) => Action::Load,
        _ => return None,
    })
}

#[kunit_tests(nvme_vfio_pci_fsm)]
mod tests {
    use super::{action, controller_runs, Action};
    use kernel::vfio::State::{self, *};

    const ALL: [State; 8] = [
        Error, Stop, Running, StopCopy, Resuming, RunningP2p, PreCopy, PreCopyP2p,
    ];

    /// The single steps `vfio_mig_get_next_state()` takes for a device
    /// with STOP_COPY | P2P | PRE_COPY (drivers/vfio/vfio_main.c), plus
    /// RUNNING <-> STOP and PRE_COPY -> STOP_COPY, which it takes without
    /// P2P.
    const STEPS: [(State, State); 18] = [
        (Running, RunningP2p),
        (Running, PreCopy),
        (Running, Stop),
        (RunningP2p, Running),
        (RunningP2p, Stop),
        (RunningP2p, PreCopyP2p),
        (Stop, RunningP2p),
        (Stop, Running),
        (Stop, StopCopy),
        (Stop, Resuming),
        (StopCopy, Stop),
        (Resuming, Stop),
        (PreCopy, Running),
        (PreCopy, PreCopyP2p),
        (PreCopy, StopCopy),
        (PreCopyP2p, PreCopy),
        (PreCopyP2p, RunningP2p),
        (PreCopyP2p, StopCopy),
    ];

    #[test]
    fn every_step_has_an_action() {
        for (cur, next) in STEPS {
            assert!(action(cur, next).is_some());
        }
    }

    #[test]
    fn no_other_arc_has_one() {
        for cur in ALL {
            for next in ALL {
                if !STEPS.contains(&(cur, next)) {
                    assert_eq!(action(cur, next), None);
                }
            }
        }
    }

    #[test]
    fn sessions_open_only_into_transfer_states() {
        for (cur, next) in STEPS {
            match action(cur, next) {
                Some(Action::OpenSave { stopped }) => {
                    assert!(next.is_saving() && stopped != next.is_running())
                }
                Some(Action::OpenResume) => assert_eq!(next, Resuming),
                Some(Action::EndSave) => assert!(cur.is_saving() && !next.is_saving()),
                _ => {}
            }
        }
    }

    #[test]
    fn device_runs_exactly_in_running_states() {
        // Leaving a state where the device may initiate P2P DMA stops it;
        // entering RUNNING or PRE_COPY from a quiesced state starts it.
        let runs = controller_runs;
        for (cur, next) in STEPS {
            match action(cur, next) {
                Some(Action::Suspend) => assert!(runs(cur) && !runs(next)),
                Some(Action::Resume) => assert!(!runs(cur) && runs(next)),
                // It suspends the controller first if it still runs.
                Some(Action::StopCopy) => assert!(!runs(next)),
                _ => assert_eq!(runs(cur), runs(next)),
            }
        }
    }
}
