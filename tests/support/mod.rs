//! Support shared by the test binaries that talk to an STS emulator (`mod support;`).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod moto;
#[cfg(feature = "server")]
pub mod server;
