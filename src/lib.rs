#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The modules, in layers: each imports only from the layers below it (tests/layers.rs holds the table
// and fails on an import against it, or on a circle between files; the README's architecture section
// draws it).
mod diagnostics;
mod rng;
mod s3path;

mod matching;
mod trie;

mod config;

mod check;
mod resolve;

mod compile;
mod reference;

mod explain;

pub mod cases;
pub mod credentials;
mod diff;
pub mod policy;
#[doc(hidden)]
pub mod synth;

#[cfg(all(feature = "server", unix))]
pub mod server;

pub use check::{Checked, check};
pub use compile::{PreparedPrincipal, Resolver, ResolverBuilder};
pub use config::{
    BuildError, Identifier, IdentifierType, InputForm, ResolverOptions, RoleArn, RoleArnError, RoleMapping,
    SecurityConfiguration,
};
pub use diagnostics::{Code, Diagnostic, Diagnostics, Escaped, Location, Severity};
pub use diff::{Change, Diff};
pub use matching::PrefixMatch;
pub use reference::ReferenceResolver;
pub use resolve::{Explanation, MappingMatch, MappingTrace, Request, RequestLines, RequestSpec, Resolution, Verdict};
pub use s3path::{S3Path, S3PathError};
