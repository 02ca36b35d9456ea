//! Media file containers for headless publishing and recording: IVF (VP8 frames) and Ogg with
//! the Opus mapping. Containers only: no codec work happens here.
//!
//! Readers treat files as untrusted: every malformed input is a typed error, never a panic, and
//! no length read from a file allocates more than a fixed bound.

pub mod ivf;
pub mod ogg;
