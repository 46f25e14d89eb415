//! How a mapping decision becomes an AssumeRole request: [`AssumeRoleSettings`] (session name
//! template, duration, external ID, source identity).

use super::error::SettingsError;
use super::session_name::{DEFAULT_TEMPLATE, SessionNameTemplate};
use super::source::{AssumeRoleRequest, CredentialRequest, DURATION_RANGE, RequestKind};
use crate::resolve::Resolution;

/// How the broker turns a mapping decision into an AssumeRole request.
///
/// ```
/// use emrfs_rolemap::credentials::AssumeRoleSettings;
/// let mut settings = AssumeRoleSettings::default().with_session_name("emrfs-{user}-{group}")?;
/// settings.duration_seconds = 900;
/// settings.source_identity = true;
/// settings.validate()?;
/// # Ok::<(), emrfs_rolemap::credentials::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssumeRoleSettings {
    /// The role session name template ([`Self::DEFAULT_SESSION_NAME`] unless set).
    session_name: SessionNameTemplate,
    /// The session duration in seconds, in [`Self::DURATION_RANGE`] ([`Self::DEFAULT_DURATION_SECONDS`]
    /// unless set).
    pub duration_seconds: u32,
    /// The external ID to pass, if the roles' trust policies require one.
    pub external_id: Option<String>,
    /// Whether to set SourceIdentity to the Hadoop user (for CloudTrail).
    pub source_identity: bool,
}

impl Default for AssumeRoleSettings {
    fn default() -> Self {
        AssumeRoleSettings {
            session_name: SessionNameTemplate::default(),
            duration_seconds: Self::DEFAULT_DURATION_SECONDS,
            external_id: None,
            source_identity: false,
        }
    }
}

impl AssumeRoleSettings {
    /// The valid range of `DurationSeconds` (STS; role chaining caps sessions at one hour).
    pub const DURATION_RANGE: std::ops::RangeInclusive<u32> = DURATION_RANGE;
    /// The session duration unless set: one hour, as STS's own default.
    pub const DEFAULT_DURATION_SECONDS: u32 = 3600;
    /// The session name template unless set: `emrfs-{user}`.
    pub const DEFAULT_SESSION_NAME: &'static str = DEFAULT_TEMPLATE;

    /// With role session names from `template`, which may use `{user}` (the Hadoop user, empty when
    /// unknown) and `{group}` (the group that matched, for a `Group` mapping; empty otherwise). Names are
    /// made valid for STS (2 to 64 characters of `A-Za-z0-9+=,.@_-`): when that needs a rewrite, `-` and
    /// 8 hex digits of a hash of the original are appended. Fails on an unknown placeholder or an
    /// unclosed `{`.
    pub fn with_session_name(mut self, template: &str) -> Result<Self, SettingsError> {
        self.session_name = SessionNameTemplate::parse(template)?;
        Ok(self)
    }

    /// The session name template, as written.
    pub fn session_name(&self) -> &str {
        self.session_name.as_str()
    }

    /// Checks the settings against STS's limits.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !Self::DURATION_RANGE.contains(&self.duration_seconds) {
            return Err(SettingsError::Duration(self.duration_seconds));
        }
        if let Some(id) = &self.external_id {
            let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c);
            if !(2..=1224).contains(&id.len()) || !id.chars().all(valid_char) {
                return Err(SettingsError::ExternalId);
            }
        }
        Ok(())
    }

    /// The request that serves `resolution` for `user`: AssumeRole for a mapping, base credentials for a
    /// fallback. Builds nothing on the heap.
    pub fn request_for<'a>(&'a self, resolution: &Resolution<'a>, user: Option<&'a str>) -> CredentialRequest<'a> {
        match resolution.mapping() {
            None => CredentialRequest::base(),
            Some(m) => CredentialRequest(RequestKind::AssumeRole(AssumeRoleRequest {
                role_arn: m.role,
                session_name: self.session_name.render(user, m),
                duration_seconds: self.duration_seconds,
                external_id: self.external_id.as_deref(),
                source_identity: user.filter(|u| self.source_identity && !u.is_empty()),
            })),
        }
    }
}
