//! The acceptance scenario at 1/20 scale (5 000 viewers, 100 relayers, 5 % of relayers
//! crashing): no invariant breaks, the depth bound holds, joins and repairs are fast. The full
//! 100 000-viewer run is `cargo run --release -p chroom-sim` (docs/PERFORMANCE.md).

use chroom_sim::{Scenario, run};

#[test]
fn a_scaled_down_broadcast_keeps_every_invariant_and_meets_the_targets() {
    for seed in [1, 2] {
        let report = run(&Scenario::scaled_down(seed, 20));
        let failures = report.acceptance_failures();
        assert!(
            failures.is_empty(),
            "seed {seed}: {failures:?}\n{}",
            report.summary()
        );
        assert!(
            !report.repair_times.is_empty(),
            "crashes left orphans to repair"
        );
        assert!(
            !report.handover_times.is_empty(),
            "leaving relayers handed children over"
        );
        let last = report.samples.last().expect("samples were taken");
        assert!(last.connected > 0.99, "{}", report.summary());
    }
}

#[test]
fn a_seed_reproduces_a_run() {
    let scenario = Scenario::scaled_down(7, 50);
    let (a, b) = (run(&scenario), run(&scenario));
    assert_eq!(a.events, b.events);
    assert_eq!(a.messages, b.messages);
    assert_eq!(a.join_times, b.join_times);
    assert_eq!(a.repair_times, b.repair_times);
    assert_eq!(a.depth_histogram, b.depth_histogram);
}
