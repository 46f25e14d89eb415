#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cases;
pub mod compile;
pub mod config;
pub mod credentials;
pub mod diagnostics;
mod lint;
pub mod policy;
pub mod reference;
pub mod resolve;
pub mod s3path;
#[cfg(all(feature = "server", unix))]
pub mod server;
pub mod synth;
pub mod validate;

pub use compile::{BuildError, PrefixMatch, PreparedPrincipal, Resolver, ResolverBuilder, ResolverOptions};
pub use config::{Identifier, IdentifierType, InputForm, RoleArn, RoleArnError, RoleMapping, SecurityConfiguration};
pub use diagnostics::{Code, Diagnostic, Diagnostics, Location, Severity};
pub use reference::ReferenceResolver;
pub use resolve::{Decision, Explanation, MappingMatch, MappingTrace, Request, RequestSpec, Resolution, Verdict};
pub use s3path::{S3Path, S3PathError, Scheme};
pub use validate::{Checked, check};
