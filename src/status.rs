//! What each stage is doing, for `/readyz` and the readiness metrics.
//!
//! A stage is *ready* when it does what it is there to do: intake once it reads its share of
//! the input partitions, the coordinator once it is either active (it holds the journal and its
//! state is restored) or standing by (another instance is active; this one follows the
//! changelog, ready to take over). A standby answers 200 so that an orchestrator neither
//! withholds it from rolling updates nor restarts it; the body and
//! `rallypoint_stage_active` say which role it has.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reaching the broker, joining the consumer group.
    Starting = 0,
    /// Holding its input partitions and processing them.
    Active = 1,
    /// Member of the group with nothing assigned: another instance is active.
    Standby = 2,
    /// Taking over: fencing the previous holder, restoring state from the changelog.
    Restoring = 3,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Active => "active",
            Phase::Standby => "standby",
            Phase::Restoring => "restoring",
        }
    }

    pub fn is_ready(self) -> bool {
        matches!(self, Phase::Active | Phase::Standby)
    }
}

/// A stage's phase, shared between its thread and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct StageStatus(AtomicU8);

impl StageStatus {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::SeqCst);
    }

    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            1 => Phase::Active,
            2 => Phase::Standby,
            3 => Phase::Restoring,
            _ => Phase::Starting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_is_ready_and_a_restoring_stage_is_not() {
        let s = StageStatus::default();
        assert_eq!(s.get(), Phase::Starting);
        for (phase, ready) in [
            (Phase::Starting, false),
            (Phase::Restoring, false),
            (Phase::Standby, true),
            (Phase::Active, true),
        ] {
            s.set(phase);
            assert_eq!(s.get(), phase);
            assert_eq!(s.get().is_ready(), ready, "{phase:?}");
        }
    }
}
