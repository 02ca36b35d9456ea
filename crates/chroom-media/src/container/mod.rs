//! containers (being written)
