//! The security-configuration document: its accepted forms, and the validated model it is read into.
//!
//! [`SecurityConfiguration::from_json`] reads any of the forms of SEMANTICS §1 and returns either a
//! configuration that is valid in every respect the engine relies on, or [`Diagnostics`] listing every
//! problem at once. [`crate::check`] returns the diagnostics and the configuration together.

pub(crate) mod arn;
pub(crate) mod json;

use std::fmt;

use serde::Serialize;

use crate::diagnostics::{Diagnostics, Location};
use crate::s3path::S3Path;

pub use arn::{RoleArn, RoleArnError};

/// The largest security configuration accepted, in bytes (64 MiB; EMR itself stores far smaller ones).
/// It bounds everything else: nesting is limited to 128 levels, S3 keys to 1024 bytes, and the
/// number of mappings and identifiers by the size.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// Reads a document from `reader`, but never more than one byte past [`MAX_DOCUMENT_BYTES`]: a larger
/// document is then refused by validation (`document-too-large`) without being read whole.
pub fn read_document(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Which of the accepted document shapes a configuration was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum InputForm {
    /// A full EMR security configuration: `{"AuthorizationConfiguration": {"EmrFsConfiguration": ...}}`.
    SecurityConfiguration,
    /// The output of `aws emr describe-security-configuration`, with the document as a JSON string.
    DescribeOutput,
    /// A bare `{"EmrFsConfiguration": {"RoleMappings": [...]}}`.
    EmrFsConfiguration,
    /// A bare `{"RoleMappings": [...]}`.
    RoleMappings,
}

/// The kind of identifiers a role mapping lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum IdentifierType {
    /// Hadoop user names, matched exactly against the request's user.
    User,
    /// Hadoop group names, matched exactly against each of the request's groups.
    Group,
    /// S3 locations `s3://bucket[/key-prefix]`, matched against the request's path.
    Prefix,
}

impl IdentifierType {
    /// The spelling used in security configurations: `User`, `Group` or `Prefix`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierType::User => "User",
            IdentifierType::Group => "Group",
            IdentifierType::Prefix => "Prefix",
        }
    }
}

impl fmt::Display for IdentifierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One identifier of a role mapping, as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    text: Box<str>,
    location: Location,
}

impl Identifier {
    pub(crate) fn new(text: String, location: Location) -> Self {
        Identifier { text: text.into_boxed_str(), location }
    }

    /// The identifier exactly as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its line and column in the source document.
    pub fn location(&self) -> Location {
        self.location
    }

    /// The identifier parsed as an S3 location (meaningful for `Prefix` identifiers, which validation
    /// guarantees parse).
    pub fn s3_path(&self) -> Option<S3Path<'_>> {
        S3Path::parse(&self.text).ok()
    }
}

/// One element of `RoleMappings`: a role and the identifiers that select it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMapping {
    role: RoleArn,
    identifier_type: IdentifierType,
    identifiers: Vec<Identifier>,
    location: Location,
}

impl RoleMapping {
    pub(crate) fn new(
        role: RoleArn,
        identifier_type: IdentifierType,
        identifiers: Vec<Identifier>,
        location: Location,
    ) -> Self {
        RoleMapping { role, identifier_type, identifiers, location }
    }

    /// The role EMRFS assumes when this mapping decides a request.
    pub fn role(&self) -> &RoleArn {
        &self.role
    }

    /// The kind of all of this mapping's identifiers.
    pub fn identifier_type(&self) -> IdentifierType {
        self.identifier_type
    }

    /// The identifiers, in the order written; any one of them matching makes the mapping match.
    pub fn identifiers(&self) -> &[Identifier] {
        &self.identifiers
    }

    /// Where the mapping object starts in the source document.
    pub fn location(&self) -> Location {
        self.location
    }
}

/// A validated set of EMRFS role mappings, in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfiguration {
    form: InputForm,
    mappings_pointer: String,
    embedded_in: Option<String>,
    mappings: Vec<RoleMapping>,
}

impl SecurityConfiguration {
    pub(crate) fn new(
        form: InputForm,
        mappings_pointer: String,
        embedded_in: Option<String>,
        mappings: Vec<RoleMapping>,
    ) -> Self {
        SecurityConfiguration { form, mappings_pointer, embedded_in, mappings }
    }

    /// Reads a configuration in any accepted form (SEMANTICS §1).
    ///
    /// Fails with every error found when the text is not JSON, is not one of the accepted forms, or has
    /// any invalid mapping. Warnings do not make it fail; use [`crate::check`] to see them.
    ///
    /// ```
    /// let config = emrfs_rolemap::SecurityConfiguration::from_json(r#"{"RoleMappings": [
    ///     {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]}
    /// ]}"#)?;
    /// assert_eq!(config.mappings()[0].role().name(), "analysts");
    /// # Ok::<(), emrfs_rolemap::Diagnostics>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self, Diagnostics> {
        Self::from_slice(text.as_bytes())
    }

    /// Like [`from_json`](Self::from_json), for bytes that may not be UTF-8 (an error then).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Diagnostics> {
        Self::from_slice_with(bytes, &crate::ResolverOptions::default())
    }

    /// Like [`from_slice`](Self::from_slice), validating for `options`: with globs on, identifiers that
    /// hold glob characters must be valid globs. Computes errors only; [`crate::check`] adds the
    /// warnings and notes.
    pub fn from_slice_with(bytes: &[u8], options: &crate::ResolverOptions) -> Result<Self, Diagnostics> {
        let checked = crate::validate::check_errors(bytes, options);
        match checked.config {
            Some(config) if checked.diagnostics.error_count() == 0 => Ok(config),
            _ => Err(checked.diagnostics),
        }
    }

    /// The role mappings, in the order EMRFS checks them.
    pub fn mappings(&self) -> &[RoleMapping] {
        &self.mappings
    }

    /// The form the document was written in.
    pub fn form(&self) -> InputForm {
        self.form
    }

    /// The JSON pointer of `RoleMappings` (inside the embedded document for the describe form).
    pub fn mappings_pointer(&self) -> &str {
        &self.mappings_pointer
    }

    /// For the describe form, the pointer of the string holding the document (`/SecurityConfiguration`).
    pub fn embedded_in(&self) -> Option<&str> {
        self.embedded_in.as_deref()
    }

    /// The JSON pointer of mapping `index`, as diagnostics and explanations print it.
    pub fn mapping_pointer(&self, index: usize) -> String {
        format!("{}/{index}", self.mappings_pointer)
    }

    /// The JSON pointer of identifier `position` of mapping `index`.
    pub fn identifier_pointer(&self, index: usize, position: usize) -> String {
        format!("{}/{index}/Identifiers/{position}", self.mappings_pointer)
    }

    /// How many identifiers the mappings hold in all.
    pub fn identifier_count(&self) -> usize {
        self.mappings.iter().map(|m| m.identifiers.len()).sum()
    }
}
