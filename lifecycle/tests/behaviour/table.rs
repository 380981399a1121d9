//! The transition table and the phase labels, checked exhaustively.

use std::collections::HashSet;

use supervisor_lifecycle::ServicePhase;

use crate::support::{ALLOWED, PHASES, allowed, real};

#[test]
fn can_transition_to_is_exactly_the_model_table() {
    for from in PHASES {
        for to in PHASES {
            assert_eq!(
                real(from).can_transition_to(real(to)),
                allowed(from, to),
                "{from:?} -> {to:?}"
            );
        }
    }
}

#[test]
fn successors_list_exactly_the_allowed_targets_in_lifecycle_order() {
    for from in PHASES {
        let expected: Vec<ServicePhase> = PHASES
            .into_iter()
            .filter(|to| ALLOWED.contains(&(from, *to)))
            .map(real)
            .collect();
        assert_eq!(real(from).successors(), expected.as_slice(), "{from:?}");
    }
}

#[test]
fn all_lists_every_phase_once_in_lifecycle_order() {
    assert_eq!(ServicePhase::ALL, PHASES.map(real));
}

#[test]
fn no_phase_follows_itself_and_nothing_returns_to_starting() {
    for phase in ServicePhase::ALL {
        assert!(!phase.can_transition_to(phase), "{phase:?}");
        assert!(
            !phase.can_transition_to(ServicePhase::Starting),
            "{phase:?}"
        );
        assert!(
            !ServicePhase::Terminated.can_transition_to(phase),
            "{phase:?}"
        );
    }
}

#[test]
fn only_terminated_is_not_alive() {
    let alive: Vec<bool> = ServicePhase::ALL
        .iter()
        .map(|phase| phase.is_alive())
        .collect();
    assert_eq!(alive, [true, true, true, true, true, false]);
}

#[test]
fn metric_labels_are_stable_snake_case() {
    let labels: Vec<&str> = ServicePhase::ALL
        .iter()
        .map(|phase| phase.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "starting",
            "running",
            "backing_off",
            "restarting",
            "stopping",
            "terminated"
        ]
    );
}

#[test]
fn display_is_human_words() {
    let words: Vec<String> = ServicePhase::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(
        words,
        [
            "starting",
            "running",
            "backing off",
            "restarting",
            "stopping",
            "terminated"
        ]
    );
}

#[test]
fn phases_hash_apart() {
    let set: HashSet<ServicePhase> = ServicePhase::ALL.into_iter().collect();
    assert_eq!(set.len(), ServicePhase::ALL.len());
}
