//! IAM role ARNs: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, checked part by part.

use std::fmt;
use std::str::FromStr;

use crate::diagnostics::Escaped;

/// The AWS partitions whose IAM role ARNs are accepted.
pub const PARTITIONS: [&str; 7] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"];

/// A validated IAM role ARN, such as `arn:aws:iam::123456789012:role/emrfs/analysts`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleArn {
    text: Box<str>,
}

impl RoleArn {
    /// Parses and validates a role ARN; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<RoleArn, RoleArnError> {
        check_path_and_name(iam_resource(text, "role")?, 64)?;
        Ok(RoleArn { text: text.into() })
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition, such as `aws`.
    pub fn partition(&self) -> &str {
        self.text.split(':').nth(1).unwrap_or_default()
    }

    /// The 12-digit account that owns the role.
    pub fn account(&self) -> &str {
        self.text.split(':').nth(4).unwrap_or_default()
    }

    /// The role's name: the last segment after `role/`, without its path.
    pub fn name(&self) -> &str {
        self.text.rsplit('/').next().unwrap_or(&self.text)
    }
}

/// The `[PATH/]NAME` after `TYPE/` of an IAM ARN `arn:PARTITION:iam::ACCOUNT:TYPE/[PATH/]NAME`, once
/// every part before it is checked; a resource of another type is [`RoleArnError::NotARole`].
pub(crate) fn iam_resource<'t>(text: &'t str, resource_type: &str) -> Result<&'t str, RoleArnError> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    if parts.first() != Some(&"arn") {
        return Err(RoleArnError::NotAnArn);
    }
    let [_, partition, service, region, account, resource] = parts[..] else {
        return Err(RoleArnError::TooFewParts);
    };
    if !PARTITIONS.contains(&partition) {
        return Err(RoleArnError::UnknownPartition(partition.to_owned()));
    }
    if service != "iam" {
        return Err(RoleArnError::NotIam(service.to_owned()));
    }
    if !region.is_empty() {
        return Err(RoleArnError::HasRegion(region.to_owned()));
    }
    if !is_account(account) {
        return Err(RoleArnError::BadAccount(account.to_owned()));
    }
    match resource.strip_prefix(resource_type).and_then(|rest| rest.strip_prefix('/')) {
        Some(path_and_name) => Ok(path_and_name),
        None => Err(RoleArnError::NotARole(resource.split('/').next().unwrap_or(resource).to_owned())),
    }
}

/// Whether `text` is an AWS account ID: exactly 12 digits.
pub(crate) fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `[PATH/]NAME`: a name of 1 to `max_name` characters, and path segments, all of IAM name
/// characters. The name-length error reports the count whatever `max_name` is.
pub(crate) fn check_path_and_name(path_and_name: &str, max_name: usize) -> Result<(), RoleArnError> {
    let (path, name) = path_and_name.rsplit_once('/').unwrap_or(("", path_and_name));
    if name.is_empty() || name.chars().count() > max_name {
        return Err(RoleArnError::BadNameLength(name.chars().count()));
    }
    if let Some(c) = name.chars().find(|&c| !is_iam_name_char(c)) {
        return Err(RoleArnError::BadNameChar(c));
    }
    if !path.is_empty() {
        for segment in path.split('/') {
            if segment.is_empty() {
                return Err(RoleArnError::EmptyPathSegment);
            }
            if let Some(c) = segment.chars().find(|&c| !is_iam_name_char(c)) {
                return Err(RoleArnError::BadPathChar(c));
            }
        }
    }
    Ok(())
}

/// The characters IAM allows in role names and path segments.
pub(crate) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

impl fmt::Debug for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleArn({})", self.text)
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for RoleArn {
    type Err = RoleArnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoleArn::parse(s)
    }
}

impl AsRef<str> for RoleArn {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for RoleArn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Which part of a role ARN is wrong; the message shows the text it quotes through [`Escaped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleArnError {
    /// The text does not start with `arn:`.
    #[error("not an ARN: it must start with `arn:`")]
    NotAnArn,
    /// Fewer than six `:`-separated parts.
    #[error("the ARN has too few `:`-separated parts")]
    TooFewParts,
    /// The partition is not an AWS partition.
    #[error("unknown partition `{}`", Escaped(.0))]
    UnknownPartition(String),
    /// The service is not `iam`.
    #[error("the service is `{}`, not `iam`", Escaped(.0))]
    NotIam(String),
    /// The region part is not empty.
    #[error("the region part is `{}`, but IAM ARNs have no region", Escaped(.0))]
    HasRegion(String),
    /// The account is not 12 digits.
    #[error("the account `{}` is not 12 digits", Escaped(.0))]
    BadAccount(String),
    /// The resource is not `role/...`.
    #[error("the resource type is `{}`, not `role`", Escaped(.0))]
    NotARole(String),
    /// The role name is empty or longer than 64 characters.
    #[error("the role name has {0} characters; IAM allows 1 to 64")]
    BadNameLength(usize),
    /// The role name has a character IAM does not allow.
    #[error("the role name contains `{}`, which IAM does not allow", Escaped(.0.encode_utf8(&mut [0; 4])))]
    BadNameChar(char),
    /// The role path has an empty segment (`//`).
    #[error("the role path has an empty segment")]
    EmptyPathSegment,
    /// A role path segment has a character IAM does not allow.
    #[error("the role path contains `{}`, which IAM does not allow", Escaped(.0.encode_utf8(&mut [0; 4])))]
    BadPathChar(char),
}

impl RoleArnError {
    /// How to fix the ARN.
    pub fn help(&self) -> String {
        let shape =
            "a role ARN looks like `arn:aws:iam::123456789012:role/NAME` or `arn:aws:iam::123456789012:role/PATH/NAME`";
        match self {
            RoleArnError::NotAnArn | RoleArnError::TooFewParts => shape.to_owned(),
            RoleArnError::UnknownPartition(_) => format!("the partition is one of {}", backticked(&PARTITIONS)),
            RoleArnError::NotIam(service) if service == "sts" => {
                "an `sts` assumed-role ARN names a session; use the ARN of the role itself, `arn:aws:iam::ACCOUNT:role/NAME`".to_owned()
            }
            RoleArnError::NotIam(_) | RoleArnError::HasRegion(_) => shape.to_owned(),
            RoleArnError::BadAccount(_) => "the account ID is exactly 12 digits, leading zeros included".to_owned(),
            RoleArnError::NotARole(_) => "EMRFS assumes roles; use the ARN of an IAM role, `...:role/NAME`".to_owned(),
            RoleArnError::BadNameLength(_) | RoleArnError::BadNameChar(_) | RoleArnError::EmptyPathSegment | RoleArnError::BadPathChar(_) => {
                "role names and path segments use only letters, digits and `+=,.@_-`; names have 1 to 64 characters".to_owned()
            }
        }
    }
}

/// `["a", "b"]` as "`a`, `b`".
pub(crate) fn backticked(items: &[&str]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_role_arns_with_and_without_paths() {
        for ok in [
            "arn:aws:iam::123456789012:role/r",
            "arn:aws-cn:iam::000000000000:role/emrfs/team-a/Role+=,.@_-1",
            "arn:aws-iso-f:iam::123456789012:role/x",
        ] {
            assert!(RoleArn::parse(ok).is_ok(), "{ok}");
        }
        let arn = RoleArn::parse("arn:aws-cn:iam::123456789012:role/p/q/name").unwrap();
        assert_eq!((arn.name(), arn.partition(), arn.account()), ("name", "aws-cn", "123456789012"));
    }

    #[test]
    fn names_the_wrong_part() {
        let cases = [
            ("role/x", RoleArnError::NotAnArn),
            ("arn:aws:iam::1", RoleArnError::TooFewParts),
            ("arn:aws-xx:iam::123456789012:role/r", RoleArnError::UnknownPartition("aws-xx".into())),
            ("arn:aws:sts::123456789012:assumed-role/r/s", RoleArnError::NotIam("sts".into())),
            ("arn:aws:iam:us-east-1:123456789012:role/r", RoleArnError::HasRegion("us-east-1".into())),
            ("arn:aws:iam::12345678901:role/r", RoleArnError::BadAccount("12345678901".into())),
            ("arn:aws:iam::123456789012:user/r", RoleArnError::NotARole("user".into())),
            ("arn:aws:iam::123456789012:role/", RoleArnError::BadNameLength(0)),
            ("arn:aws:iam::123456789012:role/a b", RoleArnError::BadNameChar(' ')),
            ("arn:aws:iam::123456789012:role/a//b", RoleArnError::EmptyPathSegment),
            ("arn:aws:iam::123456789012:role/p*/b", RoleArnError::BadPathChar('*')),
        ];
        for (text, expected) in cases {
            assert_eq!(RoleArn::parse(text), Err(expected), "{text}");
        }
        let long = format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65));
        assert_eq!(RoleArn::parse(&long), Err(RoleArnError::BadNameLength(65)));
    }
}
