//! The broker as a credentials provider of the AWS SDK for Rust (feature `sts`): [`Broker::provider`]
//! and [`Broker::trusted_provider`] give one principal's requests to one path a
//! [`SharedCredentialsProvider`] that answers through the broker's cache, so that
//! `aws_sdk_s3::Config::builder().credentials_provider(...)` signs with the decided role.
//!
//! The decision is made once, when the provider is made; every call of the provider asks the cache for
//! that decision's credentials (a hit, or the single-flight fetch and the refresh ahead of expiry), and
//! a failure is a [`CredentialsError::provider_error`] wrapping the [`CredentialError`] (never
//! `CredentialsError::not_loaded`, which would let a provider chain fall through to other credentials).

use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

use super::broker::{Broker, CredentialError};
use super::source::{CredentialSource, Credentials};
use crate::compile::PreparedPrincipal;
use crate::s3path::S3Path;

/// The name the SDK's credentials carry as their provider's.
const PROVIDER_NAME: &str = "emrfs-rolemap";

impl<S: CredentialSource> Broker<S> {
    /// A credentials provider for the AWS SDK for Rust that serves `principal`'s requests to `path`
    /// (`None`: decided by the user and groups alone) with the credentials of the role decided now: each
    /// call of the provider fetches them through this broker's cache, which refreshes them before they
    /// expire and stops serving them when a refresh is refused. Making it costs no network call and no
    /// allocation beyond the provider itself; make one per request path (a provider made for
    /// `s3://lake/` does not decide for `s3://lake/pii/x`, which a deeper `Prefix` mapping may give
    /// another role), and make it again after a configuration reload (it keeps the generation its
    /// principal was prepared against).
    ///
    /// Fails with [`CredentialError::FallbackRefused`] when no mapping matches: the base credentials (on
    /// EMR, the instance-profile role) may assume every mapped role, so they are handed only to a caller
    /// the embedder trusts with them, through [`trusted_provider`](Self::trusted_provider) — the rule of
    /// `emrfs-rolemap serve`, which refuses fallbacks unless started with `--fallback-credentials
    /// trusted`, and then to trusted callers only.
    ///
    /// ```no_run
    /// # async fn demo(resolver: emrfs_rolemap::Resolver, broker: emrfs_rolemap::credentials::Broker<emrfs_rolemap::credentials::StsSource>) -> Result<(), Box<dyn std::error::Error>> {
    /// use aws_credential_types::provider::ProvideCredentials;
    /// use emrfs_rolemap::S3Path;
    /// let alice = resolver.prepare(Some("alice"), &["analysts"]);
    /// let provider = broker.provider(&alice, Some(&S3Path::parse("s3://lake/curated/t/part-0")?))?;
    /// let credentials = provider.provide_credentials().await?; // the SDK calls this when it signs
    /// # Ok(()) }
    /// ```
    pub fn provider(
        &self,
        principal: &PreparedPrincipal,
        path: Option<&S3Path<'_>>,
    ) -> Result<SharedCredentialsProvider, CredentialError> {
        let principal = principal.with_path(path);
        if principal.resolve(None).mapping().is_none() {
            return Err(CredentialError::FallbackRefused);
        }
        Ok(SharedCredentialsProvider::new(BrokerProvider { broker: self.clone(), principal }))
    }

    /// [`provider`](Self::provider) for a caller trusted with the base credentials: a fallback decision is
    /// served by them (without AssumeRole), as [`access`](Self::access) serves it. Only for callers who
    /// may have every mapped role, since the base credentials may assume each of them (on a proxy: its
    /// operators, never its end users).
    pub fn trusted_provider(
        &self,
        principal: &PreparedPrincipal,
        path: Option<&S3Path<'_>>,
    ) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(BrokerProvider { broker: self.clone(), principal: principal.with_path(path) })
    }
}

/// One principal's decision for one path, served through the broker's cache at each call.
struct BrokerProvider<S> {
    broker: Broker<S>,
    /// The principal with the path resolved into it: `resolve(None)` is the decision.
    principal: PreparedPrincipal,
}

impl<S> fmt::Debug for BrokerProvider<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerProvider")
            .field("user", &self.principal.user())
            .field("decision", &self.principal.resolve(None).to_string())
            .finish_non_exhaustive()
    }
}

impl<S: CredentialSource> ProvideCredentials for BrokerProvider<S> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let resolution = self.principal.resolve(None);
            match self.broker.serve(resolution, self.principal.user()).await {
                Ok(access) => Ok(sdk_credentials(&access.credentials)),
                Err(error) => Err(CredentialsError::provider_error(error)),
            }
        })
    }
}

/// The SDK's form of `credentials`.
fn sdk_credentials(credentials: &Credentials) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        credentials.session_token().map(str::to_owned),
        credentials.expiration(),
        PROVIDER_NAME,
    )
}
