//! The entry point of a proxy: [`Broker`] resolves a prepared principal's request, then fetches the
//! decision's credentials through the cache, failing closed ([`CredentialError`]).

use std::fmt;
use std::sync::Arc;

use super::cache::{CredentialCache, Origin};
use super::error::SettingsError;
use super::settings::AssumeRoleSettings;
use super::source::{CredentialSource, Credentials, SourceError};
use crate::compile::PreparedPrincipal;
use crate::resolve::Resolution;
use crate::s3path::S3Path;

/// Why a proxy request got no credentials. The request fails: it never falls through (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A mapping decided, and its role could not be assumed.
    #[error("mapping {mapping} decided role `{role}`, which could not be assumed: {source}")]
    AssumeRole {
        /// The deciding mapping's index.
        mapping: usize,
        /// Its role ARN.
        role: String,
        /// What the source said.
        #[source]
        source: SourceError,
    },
    /// No mapping matched, and the base credentials could not be had.
    #[error("no mapping matched, and the base credentials could not be loaded: {source}")]
    Base {
        /// What the source said.
        #[source]
        source: SourceError,
    },
    /// No mapping matched, and the caller is not trusted with the base credentials (on EMR, the
    /// instance-profile role), which may assume every mapped role: a credentials provider made with
    /// [`Broker::provider`] refuses a fallback; [`Broker::trusted_provider`] serves it.
    #[error(
        "no mapping matched, and the base credentials (the instance-profile role) are not handed to this caller: they may assume every mapped role"
    )]
    FallbackRefused,
}

impl CredentialError {
    /// The kind of the underlying failure; `None` for a refused fallback.
    #[cfg(feature = "server")]
    pub(crate) fn kind(&self) -> Option<super::source::ErrorKind> {
        self.source_error().map(SourceError::error_kind)
    }

    /// What the source said; `None` when no source was asked (a refused fallback).
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            CredentialError::AssumeRole { source, .. } | CredentialError::Base { source } => Some(source),
            CredentialError::FallbackRefused => None,
        }
    }
}

/// A resolution with the credentials that serve it.
#[derive(Debug, Clone)]
pub struct Access<'p> {
    /// The decision, for audit logs.
    pub resolution: Resolution<'p>,
    /// The credentials of the decided role.
    pub credentials: Arc<Credentials>,
    origin: Origin,
}

impl Access<'_> {
    /// Whether the credentials came from the cache (no call to the source was waited for).
    pub fn from_cache(&self) -> bool {
        self.origin == Origin::Cache
    }

    #[cfg(feature = "server")]
    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }
}

/// The entry point for a proxy: resolve a prepared principal and a path, then fetch the credentials.
///
/// Cloning is two reference-count increments.
pub struct Broker<S> {
    cache: CredentialCache<S>,
    settings: Arc<AssumeRoleSettings>,
}

impl<S> Clone for Broker<S> {
    fn clone(&self) -> Self {
        Broker { cache: self.cache.clone(), settings: Arc::clone(&self.settings) }
    }
}

impl<S> fmt::Debug for Broker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker").field("cache", &self.cache).field("settings", &*self.settings).finish()
    }
}

impl<S: CredentialSource> Broker<S> {
    /// A broker over `cache`; fails when `settings` break STS limits.
    pub fn new(cache: CredentialCache<S>, settings: AssumeRoleSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Broker { cache, settings: Arc::new(settings) })
    }

    /// Resolves the request of `principal` for `path` and fetches the credentials; the principal's user
    /// names the session and is its source identity.
    ///
    /// A mapping decision is served by AssumeRole through the cache; a fallback by the base credentials.
    /// A failure is returned as is: it never falls through to another role.
    pub async fn access<'p>(
        &'p self,
        principal: &'p PreparedPrincipal,
        path: Option<&S3Path<'_>>,
    ) -> Result<Access<'p>, CredentialError> {
        self.serve(principal.resolve(path), principal.user()).await
    }

    /// Fetches the credentials that serve `resolution`, a decision already made for `user` (who names
    /// the session and is its source identity): for a caller that must look at the decision first, such
    /// as a server that refuses fallbacks to some callers. Fails as [`access`](Self::access) does.
    pub async fn serve<'r>(
        &'r self,
        resolution: Resolution<'r>,
        user: Option<&'r str>,
    ) -> Result<Access<'r>, CredentialError> {
        let request = self.settings.request_for(&resolution, user);
        let lookup = self.cache.lookup(&request);
        let origin = lookup.origin();
        match lookup.await {
            Ok(credentials) => {
                let origin =
                    if origin == Origin::Source && credentials.from_shared_tier { Origin::Shared } else { origin };
                Ok(Access { resolution, credentials, origin })
            }
            Err(source) => Err(match resolution.mapping() {
                Some(m) => CredentialError::AssumeRole { mapping: m.index, role: m.role.to_string(), source },
                None => CredentialError::Base { source },
            }),
        }
    }

    /// The cache, for its statistics.
    pub fn cache(&self) -> &CredentialCache<S> {
        &self.cache
    }

    /// The AssumeRole settings.
    pub fn settings(&self) -> &AssumeRoleSettings {
        &self.settings
    }
}
