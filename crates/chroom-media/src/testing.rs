//! Helpers for the crate's unit tests.

use std::net::SocketAddr;
use std::time::Instant;

/// The tests' start of time: the sans-IO parts take time as an input.
#[allow(clippy::disallowed_methods)]
pub(crate) fn epoch() -> Instant {
    Instant::now()
}

/// A socket address from text.
pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}
