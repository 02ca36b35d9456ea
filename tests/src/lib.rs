//! chroom integration test helpers
