//! Checking a security configuration: every error of building its model (`config`), then the
//! warnings and notes of the lints (`lint.rs`) — shadowed identifiers and mappings, duplicates, prefix
//! boundaries, bucket names and suspicious names — all reported together.

mod lint;

use crate::config::{ResolverOptions, SecurityConfiguration, build};
use crate::diagnostics::Diagnostics;

/// The outcome of checking a document: all diagnostics, and the configuration when there is no error.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The configuration, present exactly when the document has no error (a warning or note raised to
    /// an error later with [`Diagnostics::set_severity`] does not take it away).
    pub config: Option<SecurityConfiguration>,
    /// Every error, warning and note, in source order.
    pub diagnostics: Diagnostics,
}

/// Checks a security configuration, reporting every problem at once.
///
/// With globs on ([`ResolverOptions::globs`]), identifiers that hold glob characters must also be valid
/// globs. A configuration without errors also gets warnings and notes, which depend on the prefix mode
/// and the glob setting too (an identifier shadowed in one mode may decide in the other).
/// Never fails: a document that cannot be used comes back with `config: None` and its errors.
///
/// ```
/// let checked = emrfs_rolemap::check(br#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r",
///     "IdentifierType": "user", "Identifiers": ["alice"]}]}"#, &Default::default());
/// let error = checked.diagnostics.iter().next().unwrap();
/// assert_eq!(error.code().as_str(), "unknown-identifier-type");
/// assert_eq!(error.pointer(), "/RoleMappings/0/IdentifierType");
/// assert_eq!(error.location().map(|at| (at.line, at.column)), Some((2, 23)));
/// assert!(error.help().contains("`User`"));
/// ```
pub fn check(bytes: &[u8], options: &ResolverOptions) -> Checked {
    let (config, mut diagnostics) = build(bytes, options);
    if let Some(config) = &config {
        diagnostics.extend(lint::lint(config, options));
    }
    Checked { config, diagnostics }
}
