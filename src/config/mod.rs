//! The security-configuration document: its accepted forms, and the validated model it is read into.
//!
//! [`SecurityConfiguration::from_json`] reads any of the forms of SEMANTICS §1 and returns either a
//! configuration that is valid in every respect the engine relies on, or [`Diagnostics`] listing every
//! problem at once. [`crate::check`] returns the diagnostics and the configuration together.

pub(crate) mod arn;
mod build;
pub(crate) mod json;
mod options;

use std::sync::Arc;

use serde::Serialize;

use crate::diagnostics::{Diagnostics, Escaped, Location};
use crate::matching::{CompiledGlob, PrefixMatch, is_glob};
use crate::s3path::S3Path;

pub use crate::matching::IdentifierType;
pub use arn::{RoleArn, RoleArnError};
pub(crate) use build::build;
pub use options::ResolverOptions;

/// The largest security configuration accepted, in bytes: [`SecurityConfiguration::MAX_BYTES`].
pub(crate) const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// [`SecurityConfiguration::read_bytes`].
pub(crate) fn read_document(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
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
    /// When validated with globs on: the prefix mode they were compiled for, and the compiled glob of
    /// each glob identifier with its mapping index and position (none without globs: nothing is kept
    /// per identifier).
    globs: Option<(PrefixMatch, CompiledGlobs)>,
}

/// The compiled glob of each glob identifier, with its mapping index and position.
pub(crate) type CompiledGlobs = Vec<(usize, usize, Arc<CompiledGlob>)>;

impl SecurityConfiguration {
    pub(crate) fn new(
        form: InputForm,
        mappings_pointer: String,
        embedded_in: Option<String>,
        mappings: Vec<RoleMapping>,
        globs: Option<(PrefixMatch, CompiledGlobs)>,
    ) -> Self {
        SecurityConfiguration { form, mappings_pointer, embedded_in, mappings, globs }
    }

    /// Calls `each` with the mapping index, position and compiled glob of every glob identifier under
    /// `options`, in first-match order (nothing with globs off). The globs compiled at validation serve
    /// when it used the same options; otherwise they are compiled now. Fails at the first identifier
    /// that is not a valid glob.
    pub(crate) fn for_each_glob(
        &self,
        options: &ResolverOptions,
        mut each: impl FnMut(usize, usize, Arc<CompiledGlob>),
    ) -> Result<(), BuildError> {
        if !options.globs() {
            return Ok(());
        }
        if let Some((mode, compiled)) = &self.globs
            && *mode == options.prefix_match()
        {
            for (index, position, glob) in compiled {
                each(*index, *position, glob.clone());
            }
            return Ok(());
        }
        for (index, mapping) in self.mappings.iter().enumerate() {
            for (position, identifier) in mapping.identifiers.iter().enumerate().filter(|(_, i)| is_glob(i.as_str())) {
                let glob = CompiledGlob::new(identifier.as_str(), mapping.identifier_type, options.prefix_match())
                    .map_err(|e| BuildError::invalid_glob(self, index, position, e))?;
                each(index, position, Arc::new(glob));
            }
        }
        Ok(())
    }

    /// The largest document accepted, in bytes (64 MiB; EMR itself stores far smaller ones). It bounds
    /// everything else: nesting is limited to 128 levels, S3 keys to 1024 bytes, and the number of
    /// mappings and identifiers by the size.
    pub const MAX_BYTES: usize = MAX_DOCUMENT_BYTES;

    /// Reads a document's bytes from `reader`, but never more than one byte past [`Self::MAX_BYTES`]: a
    /// larger document is then refused by validation (`document-too-large`) without being read whole.
    pub fn read_bytes(reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
        read_document(reader)
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
        Self::from_slice_with(bytes, &ResolverOptions::default())
    }

    /// Like [`from_slice`](Self::from_slice), validating for `options`: with globs on, identifiers that
    /// hold glob characters must be valid globs. Computes errors only; [`crate::check`] adds the
    /// warnings and notes.
    pub fn from_slice_with(bytes: &[u8], options: &ResolverOptions) -> Result<Self, Diagnostics> {
        match build(bytes, options) {
            (Some(config), diagnostics) if diagnostics.error_count() == 0 => Ok(config),
            (_, diagnostics) => Err(diagnostics),
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

/// Why a configuration could not be compiled with the options asked for: with globs on, an identifier
/// is not a valid glob (when the configuration was validated with globs off), or the glob identifiers
/// are too many to compile together. The message shows the text it quotes through [`Escaped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct BuildError {
    kind: BuildErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BuildErrorKind {
    InvalidGlob { identifier: String, pointer: String, location: Location, message: String },
    GlobSetTooLarge(String),
}

impl BuildError {
    pub(crate) fn invalid_glob(
        config: &SecurityConfiguration,
        index: usize,
        position: usize,
        error: globset::Error,
    ) -> Self {
        let identifier = &config.mappings()[index].identifiers()[position];
        let kind = BuildErrorKind::InvalidGlob {
            identifier: identifier.as_str().to_owned(),
            pointer: config.identifier_pointer(index, position),
            location: identifier.location(),
            message: error.kind().to_string(),
        };
        BuildError { kind }
    }

    pub(crate) fn glob_set_too_large(message: String) -> Self {
        BuildError { kind: BuildErrorKind::GlobSetTooLarge(message) }
    }

    /// The identifier that is not a valid glob, as written; `None` when the globs are too many.
    pub fn identifier(&self) -> Option<&str> {
        match &self.kind {
            BuildErrorKind::InvalidGlob { identifier, .. } => Some(identifier),
            BuildErrorKind::GlobSetTooLarge(_) => None,
        }
    }

    /// The JSON pointer of that identifier.
    pub fn pointer(&self) -> Option<&str> {
        match &self.kind {
            BuildErrorKind::InvalidGlob { pointer, .. } => Some(pointer),
            BuildErrorKind::GlobSetTooLarge(_) => None,
        }
    }

    /// Its line and column.
    pub fn location(&self) -> Option<Location> {
        match &self.kind {
            BuildErrorKind::InvalidGlob { location, .. } => Some(*location),
            BuildErrorKind::GlobSetTooLarge(_) => None,
        }
    }

    fn message(&self) -> String {
        match &self.kind {
            BuildErrorKind::InvalidGlob { identifier, pointer, location, message } => format!(
                "identifier `{}` at `{}` ({}:{}) is not a valid glob: {}",
                Escaped(identifier),
                Escaped(pointer),
                location.line,
                location.column,
                Escaped(message)
            ),
            BuildErrorKind::GlobSetTooLarge(message) => {
                format!("the glob identifiers are too large to compile together: {}", Escaped(message))
            }
        }
    }
}
