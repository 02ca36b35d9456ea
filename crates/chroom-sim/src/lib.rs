//! A deterministic discrete-event simulator of broadcast trees: it runs the real
//! [`chroom_overlay::Overlay`] state machine for every member of a tree of up to hundreds of
//! thousands of members, with a latency model, a capacity distribution and churn (joins,
//! graceful leaves, crashes), and checks the tree's invariants as it goes.
//!
//! It owns the virtual clock, the simulated network (per-member access delays drawn from a
//! log-normal distribution, messages to a crashed member lost, crashes noticed by the crashed
//! member's neighbours after a detection delay) and the measurements. It decides nothing about
//! the tree: every decision is the core's. The same seed gives the same run.
//!
//! [`Scenario`] describes a run, [`run`] performs it and returns a [`SimReport`];
//! `chroom-sim` (the binary) prints the report and writes plots ([`plot`]).
#![forbid(unsafe_code)]

pub mod costs;
pub mod plot;
mod report;
mod sim;

pub use costs::CostModel;
pub use report::{Invariant, Sample, SimReport, Violation};
pub use sim::{Scenario, run};
