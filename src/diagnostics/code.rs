//! The codes of diagnostics: their names, default severities, descriptions and general help, and the
//! near-miss rule that suggests a code (or a key, or an identifier type) for a misspelled one.

use std::fmt;

use serde::Serialize;

use super::Severity;

/// The stable identity of a kind of diagnostic; its kebab-case name is part of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    // Warnings and notes about a valid configuration (`check` reports them beside the errors).
    /// An identifier never decides: an earlier mapping matches every request it matches.
    ShadowedIdentifier,
    /// A mapping never decides: every one of its identifiers is shadowed.
    UnreachableMapping,
    /// An identifier repeats an earlier identifier of the same mapping.
    DuplicateIdentifier,
    /// An earlier identifier of the same mapping matches every request this one matches (note).
    RedundantIdentifier,
    /// A `User` or `Group` mapping loses, for some paths, to an earlier `Prefix` mapping (note).
    PartiallyShadowedMapping,
    /// A `Prefix` key does not end in `/`, so it also matches sibling keys.
    PrefixBoundary,
    /// A `Prefix` names a bucket that no current S3 bucket can have.
    InvalidBucketName,
    /// An identifier holds glob characters while globs are off, so they are matched literally.
    LiteralGlobCharacters,
    /// An identifier holds non-ASCII, look-alike or invisible characters.
    SuspiciousCharacters,
    /// A `User` identifier looks like a Kerberos principal (`user@REALM`).
    KerberosPrincipal,
    /// The instance profile and the role given for it cannot belong together (error).
    InstanceProfileMismatch,
    // Errors.
    /// The input is not valid UTF-8.
    InvalidUtf8,
    /// The input is not JSON.
    JsonSyntax,
    /// An object has the same key twice; JSON readers disagree on which one wins.
    DuplicateKey,
    /// The document is not one of the accepted forms of a security configuration.
    UnrecognizedDocument,
    /// No `RoleMappings` array where the form of the document needs one.
    MissingRoleMappings,
    /// `RoleMappings` is an empty array.
    EmptyRoleMappings,
    /// A value has the wrong JSON type.
    WrongType,
    /// A role mapping has a key other than `Role`, `IdentifierType` and `Identifiers`.
    UnknownKey,
    /// A role mapping lacks one of its three keys.
    MissingKey,
    /// `Role` is not an IAM role ARN.
    InvalidRoleArn,
    /// `IdentifierType` is not `User`, `Group` or `Prefix`.
    UnknownIdentifierType,
    /// `Identifiers` is an empty array.
    EmptyIdentifiers,
    /// An identifier is the empty string.
    EmptyIdentifier,
    /// An identifier starts or ends with white space.
    PaddedIdentifier,
    /// A `Prefix` identifier is not an `s3://`, `s3a://` or `s3n://` URI with a bucket.
    InvalidPrefix,
    /// An identifier is not a valid glob while globs are enabled.
    InvalidGlob,
    /// The document is larger than [`SecurityConfiguration::MAX_BYTES`](crate::SecurityConfiguration::MAX_BYTES).
    DocumentTooLarge,
    /// An identifier contains a control character such as NUL.
    ControlCharacter,
}

impl Code {
    /// Every code, in the order of declaration: the lints' warnings and notes, then the errors.
    pub const ALL: [Code; 29] = [
        Code::ShadowedIdentifier,
        Code::UnreachableMapping,
        Code::DuplicateIdentifier,
        Code::RedundantIdentifier,
        Code::PartiallyShadowedMapping,
        Code::PrefixBoundary,
        Code::InvalidBucketName,
        Code::LiteralGlobCharacters,
        Code::SuspiciousCharacters,
        Code::KerberosPrincipal,
        Code::InstanceProfileMismatch,
        Code::InvalidUtf8,
        Code::JsonSyntax,
        Code::DuplicateKey,
        Code::UnrecognizedDocument,
        Code::MissingRoleMappings,
        Code::EmptyRoleMappings,
        Code::WrongType,
        Code::UnknownKey,
        Code::MissingKey,
        Code::InvalidRoleArn,
        Code::UnknownIdentifierType,
        Code::EmptyIdentifiers,
        Code::EmptyIdentifier,
        Code::PaddedIdentifier,
        Code::InvalidPrefix,
        Code::InvalidGlob,
        Code::DocumentTooLarge,
        Code::ControlCharacter,
    ];

    /// The kebab-case name, such as `invalid-role-arn`.
    pub fn as_str(self) -> &'static str {
        self.facts().0
    }

    /// The code named `name` (its kebab-case name, exactly), if there is one.
    ///
    /// ```
    /// use emrfs_rolemap::Code;
    /// assert_eq!(Code::from_name("shadowed-identifier"), Some(Code::ShadowedIdentifier));
    /// assert_eq!(Code::from_name("shadowed-identifiers"), None);
    /// assert_eq!(Code::closest("shadowed-identifiers"), Some(Code::ShadowedIdentifier));
    /// ```
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// The code that `name` most likely misspells (equal but for case, a plural `s`, `_` for `-`, or a
    /// few edits), for a "did you mean" suggestion; `None` when no code is close.
    pub fn closest(name: &str) -> Option<Code> {
        let name = name.replace('_', "-").to_ascii_lowercase();
        Code::from_name(&name).or_else(|| Code::from_name(closest(&name, Code::ALL.iter().map(|c| c.as_str()))?))
    }

    /// The severity diagnostics of this code have, unless their level is changed
    /// ([`Diagnostics::set_severity`](super::Diagnostics::set_severity)).
    pub fn severity(self) -> Severity {
        self.facts().1
    }

    /// What the code means, in one sentence.
    pub fn description(self) -> &'static str {
        self.facts().2
    }

    /// How such a problem is fixed in general (each diagnostic's own help is more precise).
    pub fn help(self) -> &'static str {
        self.facts().3
    }

    /// The name, default severity, description and help: one table, so that no fact of a code can be
    /// forgotten.
    fn facts(self) -> (&'static str, Severity, &'static str, &'static str) {
        use Severity::{Error, Note, Warning};
        match self {
            Code::ShadowedIdentifier => (
                "shadowed-identifier",
                Warning,
                "an identifier can never decide: an earlier mapping matches every request it matches",
                "the first matching mapping decides: remove the identifier, or move its mapping above the one that shadows it if its role should win",
            ),
            Code::UnreachableMapping => (
                "unreachable-mapping",
                Warning,
                "a mapping can never decide: every one of its identifiers is shadowed by earlier mappings",
                "its role is never assumed through this mapping: remove the mapping, or move it above the mappings that shadow it",
            ),
            Code::DuplicateIdentifier => (
                "duplicate-identifier",
                Warning,
                "an identifier repeats an earlier identifier of the same mapping (`s3://b` and `s3a://b/` are the same prefix)",
                "remove the repetition; if another name was meant, write that one",
            ),
            Code::RedundantIdentifier => (
                "redundant-identifier",
                Note,
                "an earlier identifier of the same mapping matches every request this one matches",
                "the mapping decides the same requests without it: remove it, or keep it as documentation",
            ),
            Code::PartiallyShadowedMapping => (
                "partially-shadowed-mapping",
                Note,
                "a `User` or `Group` mapping below `Prefix` mappings: for paths under those prefixes, the prefix mapping decides",
                "the first matching mapping decides whatever its identifier type: move the mapping above the prefixes if its role should win there",
            ),
            Code::PrefixBoundary => (
                "prefix-boundary",
                Warning,
                "a `Prefix` key that does not end in `/` also matches sibling keys (`s3://b/data` matches `s3://b/database/`)",
                "end the prefix with `/` to match only the keys under it",
            ),
            Code::InvalidBucketName => (
                "invalid-bucket-name",
                Warning,
                "a `Prefix` names a bucket that no current S3 bucket can be named, so it likely never matches",
                "bucket names are 3 to 63 lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit",
            ),
            Code::LiteralGlobCharacters => (
                "literal-glob-characters",
                Warning,
                "an identifier holds `*`, `?`, `[` or `{` while globs are off, so EMRFS matches them literally",
                "write the exact name, or turn globs on if the identifier is meant as a glob",
            ),
            Code::SuspiciousCharacters => (
                "suspicious-characters",
                Warning,
                "an identifier holds invisible characters, letters that look like ASCII ones mixed with ASCII, or (users and groups) non-ASCII characters",
                "EMRFS compares identifiers byte for byte: retype the identifier as the cluster reports the name",
            ),
            Code::KerberosPrincipal => (
                "kerberos-principal",
                Warning,
                "a user such as `alice@EXAMPLE.COM`: Hadoop usually shortens principals to `alice`",
                "write the short name Hadoop's `auth_to_local` rules produce",
            ),
            Code::InstanceProfileMismatch => (
                "instance-profile-mismatch",
                Error,
                "the EC2 instance profile and its role have different names or accounts, and EMR rejects the cluster",
                "create an instance profile named like its role, in the same account, and use it",
            ),
            Code::InvalidUtf8 => (
                "invalid-utf8",
                Error,
                "the file is not UTF-8",
                "save the configuration as UTF-8; JSON documents must be UTF-8",
            ),
            Code::JsonSyntax => (
                "json-syntax",
                Error,
                "the file is not JSON",
                "fix the JSON at the position shown: JSON allows no comments, trailing commas or single quotes",
            ),
            Code::DuplicateKey => (
                "duplicate-key",
                Error,
                "an object repeats a key, and JSON readers disagree on which one wins",
                "keep exactly one of the keys",
            ),
            Code::UnrecognizedDocument => (
                "unrecognized-document",
                Error,
                "the document is not one of the accepted forms of a security configuration",
                "write a security configuration, the output of `aws emr describe-security-configuration`, `{\"EmrFsConfiguration\": ...}` or `{\"RoleMappings\": [...]}`",
            ),
            Code::MissingRoleMappings => (
                "missing-role-mappings",
                Error,
                "the document has no `RoleMappings` where its form needs one",
                "EMRFS role mappings live at `/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings`; check the spelling of the keys on the way",
            ),
            Code::EmptyRoleMappings => (
                "empty-role-mappings",
                Error,
                "`RoleMappings` is empty",
                "add at least one mapping, or remove `EmrFsConfiguration`",
            ),
            Code::WrongType => (
                "wrong-type",
                Error,
                "a value has the wrong JSON type",
                "write the value with the type the message names",
            ),
            Code::UnknownKey => (
                "unknown-key",
                Error,
                "a role mapping has a key other than `Role`, `IdentifierType` and `Identifiers`",
                "a role mapping has exactly `Role`, `IdentifierType` and `Identifiers`: fix the spelling or remove the key",
            ),
            Code::MissingKey => (
                "missing-key",
                Error,
                "a role mapping lacks `Role`, `IdentifierType` or `Identifiers`",
                "every role mapping needs `Role`, `IdentifierType` and `Identifiers`",
            ),
            Code::InvalidRoleArn => (
                "invalid-role-arn",
                Error,
                "`Role` is not an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`)",
                "write the role's ARN as IAM shows it; the message names the part that is wrong",
            ),
            Code::UnknownIdentifierType => (
                "unknown-identifier-type",
                Error,
                "`IdentifierType` is not `User`, `Group` or `Prefix`",
                "identifier types are case-sensitive: `User`, `Group` or `Prefix`",
            ),
            Code::EmptyIdentifiers => (
                "empty-identifiers",
                Error,
                "`Identifiers` is empty, so the mapping can never match",
                "list at least one identifier, or remove the mapping",
            ),
            Code::EmptyIdentifier => (
                "empty-identifier",
                Error,
                "an identifier is the empty string",
                "remove the empty string or write the identifier",
            ),
            Code::PaddedIdentifier => (
                "padded-identifier",
                Error,
                "an identifier starts or ends with white space, which no user, group or S3 location has",
                "remove the white space",
            ),
            Code::InvalidPrefix => (
                "invalid-prefix",
                Error,
                "a `Prefix` identifier is not an `s3://`, `s3a://` or `s3n://` URI with a bucket",
                "write `s3://bucket` or `s3://bucket/key-prefix`",
            ),
            Code::InvalidGlob => (
                "invalid-glob",
                Error,
                "with globs on, an identifier is not a valid glob",
                "match a literal `*`, `?`, `[` or `{` with `[*]`, `[?]`, `[[]` or `[{]`",
            ),
            Code::DocumentTooLarge => (
                "document-too-large",
                Error,
                "the document is larger than the 64 MiB accepted",
                "a security configuration is a few kilobytes: check that the file is one",
            ),
            Code::ControlCharacter => (
                "control-character",
                Error,
                "an identifier contains a control character such as NUL",
                "remove the control character",
            ),
        }
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The candidate that `word` most likely misspells: equal ignoring case or a plural `s`, or within
/// edit distance 2 (3 for words of more than 8 bytes).
pub(crate) fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let normal = |w: &str| w.to_ascii_lowercase().trim_end_matches('s').to_owned();
    let word_normal = normal(word);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            (
                if normal(c) == word_normal {
                    0
                } else {
                    edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase())
                },
                c,
            )
        })
        .filter(|(d, c)| *d <= if c.len() > 8 { 3 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_in_declaration_order() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code}");
        }
        assert_eq!(Code::ControlCharacter as usize + 1, Code::ALL.len(), "the last code closes the list");
    }

    #[test]
    fn every_code_is_listed_once_with_its_facts() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
        for code in Code::ALL {
            assert_eq!(Code::from_name(code.as_str()), Some(code));
            assert!(!code.description().is_empty() && !code.help().is_empty(), "{code}");
            assert!(!code.description().ends_with('.') && !code.help().ends_with('.'), "{code}");
        }
    }

    #[test]
    fn misspelled_codes_get_a_suggestion() {
        assert_eq!(Code::closest("shadowed_identifier"), Some(Code::ShadowedIdentifier));
        assert_eq!(Code::closest("Redundant-Identifier"), Some(Code::RedundantIdentifier));
        assert_eq!(Code::closest("prefix-boundry"), Some(Code::PrefixBoundary));
        assert_eq!(Code::closest("nothing-like-it"), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
