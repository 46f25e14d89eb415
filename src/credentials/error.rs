//! [`SettingsError`]: why settings of the credentials layer cannot be used. Below every other file of
//! the layer, since each checks settings of its own.

/// Why settings of the credentials layer cannot be used: [`AssumeRoleSettings`](super::AssumeRoleSettings), a
/// [`CredentialRequest`](super::CredentialRequest), a [`CacheConfig`](super::CacheConfig), an STS source's configuration. The
/// message shows the text it quotes through [`Escaped`](crate::Escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The duration is outside 900 to 43200 seconds.
    #[error("session duration {0} s is outside the range STS accepts, 900 to 43200 s")]
    Duration(u32),
    /// The external ID is not 2 to 1224 characters of `A-Za-z0-9+=,.@:/-`.
    #[error("the external ID must be 2 to 1224 characters of letters, digits and `+=,.@:/-`")]
    ExternalId,
    /// A role session name is not 2 to 64 characters of `A-Za-z0-9+=,.@_-`.
    #[error("a role session name must be 2 to 64 characters of letters, digits and `+=,.@_-`")]
    SessionName,
    /// A session name template has a `{...}` that is not `{user}` or `{group}`.
    #[error("unknown placeholder `{{{}}}` in the session name template; use `{{user}}` or `{{group}}`", crate::diagnostics::Escaped(.0))]
    UnknownPlaceholder(String),
    /// A session name template has a `{` without its `}`.
    #[error("unclosed `{{` in the session name template")]
    UnclosedPlaceholder,
    /// The cache would refresh credentials as soon as it got them.
    #[error(
        "refreshing {} s before expiry needs sessions longer than that; the session duration is {duration_seconds} s",
        .refresh_before.as_secs_f64()
    )]
    RefreshWindow {
        /// The cache's refresh window.
        refresh_before: std::time::Duration,
        /// The session duration, in seconds.
        duration_seconds: u32,
    },
    /// The cache holds no entry.
    #[error("the credential cache must hold at least one entry")]
    NoEntries,
    /// The STS region is empty or not of lowercase letters, digits and `-`.
    #[error("invalid region `{}`: expected a region name such as `us-east-1`", crate::diagnostics::Escaped(.0))]
    Region(String),
    /// The STS endpoint URL is not `http://HOST...` or `https://HOST...`.
    #[error("invalid STS endpoint URL `{}`: expected `https://HOST[:PORT]` (or `http://` for a local emulator)", crate::diagnostics::Escaped(.0))]
    EndpointUrl(String),
    /// The number of STS attempts is 0.
    #[error("the number of STS attempts must be at least 1")]
    MaxAttempts,
    /// A fleet key of the shared cache tier is shorter than 32 bytes (the count is given, never the key).
    #[error("a shared cache key must have at least 32 bytes, this one has {0}; make one with `openssl rand -hex 32`")]
    SharedCacheKey(usize),
    /// The shared cache tier's URL is not one the Redis client accepts (shown without its password).
    #[error("invalid shared cache URL `{}`: {reason}; expected `redis://HOST[:PORT][/DB]` or `rediss://` for TLS", crate::diagnostics::Escaped(.url))]
    SharedCacheUrl {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// A shared tier was added to a cache that was already cloned (add it right after creating the cache).
    #[error("a shared cache tier must be added to a credential cache before it is cloned or used")]
    SharedCacheInUse,
}
