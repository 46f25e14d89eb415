//! Support shared by the test binaries (`mod support;`): the binary run as a user runs it, the STS
//! emulator, the served binary, temporary directories, and the generators of the property tests.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod cli;
pub mod clock;
pub mod generators;
pub mod moto;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "server")]
pub mod server;
pub mod tempdir;
