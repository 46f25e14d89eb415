//! Credentials for a resolution (SEMANTICS §5): a `mapping` decision is served by STS AssumeRole on the
//! mapping's role, a `fallback` decision by the base credentials (on EMR, the instance profile) without
//! AssumeRole. A failed AssumeRole fails the request: it never falls through to a later mapping or to
//! the fallback role.
//!
//! - `source.rs`: [`Credentials`], the [`CredentialRequest`] a [`CredentialSource`] answers, and
//!   [`SourceError`];
//! - `settings.rs`: [`AssumeRoleSettings`], how a decision becomes a request; `error.rs`:
//!   [`SettingsError`], why settings of this layer cannot be used;
//! - `cache.rs`: the [`CredentialCache`] in front of the source ([`CacheConfig`], [`CacheStats`]),
//!   reading time from a [`Clock`] (`clock.rs`);
//! - `shared.rs`: the fleet's shared tier behind the cache ([`SharedTier`]): sealed entries, one
//!   AssumeRole per request for the whole fleet, a breaker; `redis_tier.rs` (feature `redis`): the tier
//!   on Redis or Valkey;
//! - `broker.rs`: [`Broker`], the one entry point a proxy calls: resolve, then fetch ([`Access`],
//!   [`CredentialError`]);
//! - `sts.rs` (feature `sts`): [`StsSource`], the source on STS through the AWS SDK;
//! - `sdk.rs` (feature `sts`): [`Broker::provider`] and [`Broker::trusted_provider`], the broker as a
//!   credentials provider of the AWS SDK for Rust, for the S3 client of a proxy.
//!
//! Secrets (secret access keys, session tokens) are zeroed when dropped and never appear in `Debug` or
//! `Display` output, nor in error messages.

mod broker;
mod cache;
mod clock;
mod error;
#[cfg(feature = "redis")]
mod redis_tier;
#[cfg(feature = "sts")]
mod sdk;
mod session_name;
mod settings;
mod shared;
mod source;
#[cfg(feature = "sts")]
mod sts;

pub use broker::{Access, Broker, CredentialError};
pub use cache::{CacheConfig, CacheStats, CredentialCache};
// A test seam (inject time into a cache), not a feature: hidden from the documented surface.
#[doc(hidden)]
pub use clock::Clock;
pub use error::SettingsError;
pub use settings::AssumeRoleSettings;
pub use shared::SharedTier;
pub use source::{CredentialRequest, CredentialSource, Credentials, SourceError};
#[cfg(feature = "sts")]
pub use sts::{StsSource, StsSourceConfig};

// What the server uses of this layer beyond its public surface.
#[cfg(feature = "server")]
pub(crate) use cache::Origin;
#[cfg(feature = "server")]
pub(crate) use source::{ErrorKind, Secret, format_rfc3339};
