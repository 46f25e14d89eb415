//! Support shared by the test binaries (`mod support;`): the STS emulator, the served binary,
//! and the generators of the property tests.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod generators;
pub mod moto;
#[cfg(feature = "server")]
pub mod server;
