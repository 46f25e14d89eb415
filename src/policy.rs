//! The IAM policies around EMRFS role mappings, and the check that an instance profile fits its role.
//!
//! EMRFS runs on the cluster's EC2 instances with the instance profile's role and, for a request that a
//! mapping decides, calls STS `AssumeRole` on the mapping's role. So every mapped role must trust the
//! instance-profile role ([`PolicyDocument::trust`]), the instance-profile role must be allowed to
//! assume exactly the mapped roles ([`PolicyDocument::assume`]), and whoever creates the cluster must be
//! allowed to pass the cluster's roles, and only those, to the services that use them
//! ([`PolicyDocument::pass_role`]). EMR also rejects an EC2 instance profile whose name differs from its
//! role's ([`InstanceProfileArn::mismatches`]).
//!
//! Every document has `"Version": "2012-10-17"` and statements with `Sid`s, and serializes to the JSON
//! IAM accepts.
//!
//! ```
//! use emrfs_rolemap::policy::PolicyDocument;
//! use emrfs_rolemap::{RoleArn, SecurityConfiguration};
//! let config = SecurityConfiguration::from_json(r#"{"RoleMappings": [
//!     {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]}
//! ]}"#)?;
//! let assume = PolicyDocument::assume(&config, false);
//! assert_eq!(assume.resources().collect::<Vec<_>>(), ["arn:aws:iam::123456789012:role/analysts"]);
//! let instance_profile_role = RoleArn::parse("arn:aws:iam::123456789012:role/EMR_EC2_DefaultRole")?;
//! let trust = PolicyDocument::trust(&config, &instance_profile_role, false)?;
//! assert_eq!(trust[0].0.name(), "analysts");
//! println!("{}", trust[0].1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::config::arn::{self, RoleArnError};
use crate::config::{RoleArn, SecurityConfiguration};
use crate::diagnostics::{Code, Diagnostic, Escaped, Severity};

/// The IAM policy language version every generated document declares.
const POLICY_VERSION: &str = "2012-10-17";

/// The service principals that use the cluster's roles, as `iam:PassedToService` names them.
const EMR_SERVICE: &str = "elasticmapreduce.amazonaws.com";
/// The service that receives the EC2 instance-profile role.
const EC2_SERVICE: &str = "ec2.amazonaws.com";
/// The service that receives the automatic-scaling role.
const AUTOSCALING_SERVICE: &str = "application-autoscaling.amazonaws.com";

/// An IAM policy document: `{"Version": "2012-10-17", "Statement": [...]}`, each statement an `Allow`
/// with a `Sid`. Serializes to the JSON IAM accepts; `Display` pretty-prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statements: Vec<Statement>,
}

impl PolicyDocument {
    fn new(statements: Vec<Statement>) -> Self {
        PolicyDocument { version: POLICY_VERSION, statements }
    }

    /// The resources of its statements, in order (none for a trust policy, whose resource is the role).
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().flat_map(|s| s.resource.iter().map(String::as_str))
    }
}

/// Pretty-printed JSON, ready to paste into IAM.
impl fmt::Display for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// One `Allow` statement of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    /// The statement's identifier (letters and digits only, as IAM requires).
    sid: &'static str,
    /// Always `Allow`: the generated policies grant, the absence of a grant denies.
    effect: Effect,
    /// Who may act, for a trust policy; absent in identity policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<Principal>,
    /// The allowed actions.
    action: Vec<&'static str>,
    /// The resources the actions are allowed on; absent in trust policies (the role itself).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resource: Vec<String>,
    /// `{"StringEquals": {key: value}}` conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<Condition>,
}

/// The effect of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Effect {
    /// The statement grants its actions.
    Allow,
}

/// The principal of a trust-policy statement: an AWS principal ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Principal {
    /// The ARN of the IAM role (or user) trusted.
    #[serde(rename = "AWS")]
    aws: String,
}

/// The conditions of a statement, all `StringEquals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Condition {
    /// Condition key to the value it must equal.
    #[serde(rename = "StringEquals")]
    string_equals: BTreeMap<&'static str, &'static str>,
}

/// Why a policy cannot be generated; the message shows the text it quotes through [`Escaped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A mapped role is in another partition than the instance-profile role: STS cannot cross partitions.
    #[error("mapped role `{role}` is in partition `{}`, but the instance-profile role `{instance_profile_role}` is in `{}`; AssumeRole cannot cross partitions", role.partition(), instance_profile_role.partition())]
    PartitionMismatch {
        /// The mapped role.
        role: RoleArn,
        /// The instance-profile role.
        instance_profile_role: RoleArn,
    },
    /// The account is not 12 digits.
    #[error("the account `{}` is not 12 digits", Escaped(.0))]
    InvalidAccount(String),
    /// A cluster role name is not a valid IAM role name (or `PATH/NAME`).
    #[error("the {which} `{}` is not a valid IAM role name: {error}", Escaped(.name))]
    InvalidRoleName {
        /// Which role: `service role`, `EC2 role` or `autoscaling role`.
        which: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        error: RoleArnError,
    },
    /// An instance profile ARN is not valid; the message says which part is wrong.
    #[error("{reason}")]
    InvalidInstanceProfile {
        /// Which part is wrong.
        reason: String,
        /// How to fix it.
        help: String,
    },
}

impl PolicyError {
    /// How to fix the input, when more can be said than the message does.
    pub fn help(&self) -> Option<&str> {
        match self {
            PolicyError::InvalidInstanceProfile { help, .. } => Some(help),
            _ => None,
        }
    }
}

/// The distinct roles of the mappings, sorted by ARN.
fn mapped_roles(config: &SecurityConfiguration) -> Vec<&RoleArn> {
    let mut roles: Vec<&RoleArn> = config.mappings().iter().map(|m| m.role()).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// The actions the instance-profile role needs on each mapped role.
fn assume_actions(source_identity: bool) -> Vec<&'static str> {
    let mut actions = vec!["sts:AssumeRole"];
    if source_identity {
        actions.push("sts:SetSourceIdentity");
    }
    actions
}

impl PolicyDocument {
    /// For each distinct mapped role, sorted by ARN, the trust policy that lets `instance_profile_role`
    /// assume it: `sts:AssumeRole`, and `sts:SetSourceIdentity` when EMRFS sets a source identity.
    ///
    /// Fails when a mapped role is in another partition than the instance-profile role.
    pub fn trust<'c>(
        config: &'c SecurityConfiguration,
        instance_profile_role: &RoleArn,
        source_identity: bool,
    ) -> Result<Vec<(&'c RoleArn, PolicyDocument)>, PolicyError> {
        mapped_roles(config)
            .into_iter()
            .map(|role| {
                if role.partition() != instance_profile_role.partition() {
                    return Err(PolicyError::PartitionMismatch {
                        role: role.clone(),
                        instance_profile_role: instance_profile_role.clone(),
                    });
                }
                let statement = Statement {
                    sid: "TrustEmrfsInstanceProfileRole",
                    effect: Effect::Allow,
                    principal: Some(Principal { aws: instance_profile_role.to_string() }),
                    action: assume_actions(source_identity),
                    resource: Vec::new(),
                    condition: None,
                };
                Ok((role, PolicyDocument::new(vec![statement])))
            })
            .collect()
    }

    /// The identity policy of the instance-profile role: `sts:AssumeRole` (and `sts:SetSourceIdentity` when
    /// asked, which roles in other accounts need on both sides) on exactly the distinct mapped roles.
    pub fn assume(config: &SecurityConfiguration, source_identity: bool) -> PolicyDocument {
        PolicyDocument::new(vec![Statement {
            sid: "AssumeEmrfsMappedRoles",
            effect: Effect::Allow,
            principal: None,
            action: assume_actions(source_identity),
            resource: mapped_roles(config).into_iter().map(RoleArn::to_string).collect(),
            condition: None,
        }])
    }

    /// EMR's default service role, passed to `elasticmapreduce.amazonaws.com`.
    pub const DEFAULT_SERVICE_ROLE: &'static str = "EMR_DefaultRole";
    /// EMR's default role of the EC2 instance profile, passed to `ec2.amazonaws.com`.
    pub const DEFAULT_EC2_ROLE: &'static str = "EMR_EC2_DefaultRole";
    /// EMR's default automatic-scaling role, passed to `application-autoscaling.amazonaws.com`.
    pub const DEFAULT_AUTOSCALING_ROLE: &'static str = "EMR_AutoScaling_DefaultRole";

    /// The inline policy that lets cluster creators pass the cluster's roles and nothing else: one
    /// `iam:PassRole` statement per role — the EMR service role, the EC2 instance profile's role, the
    /// automatic-scaling role, each by name (`NAME` or `PATH/NAME`; EMR's defaults are the `DEFAULT_*`
    /// constants) — restricted by `iam:PassedToService` to the service that uses it. Roles are in the
    /// `aws` partition, in `account` (12 digits), or in any account (`*`) when `None`.
    ///
    /// Fails when the account is not 12 digits or a name is not an IAM role name.
    pub fn pass_role(
        service_role: &str,
        ec2_role: &str,
        autoscaling_role: &str,
        account: Option<&str>,
    ) -> Result<PolicyDocument, PolicyError> {
        pass_role_policy(service_role, ec2_role, autoscaling_role, account)
    }
}

/// [`PolicyDocument::pass_role`].
fn pass_role_policy(
    service_role: &str,
    ec2_role: &str,
    autoscaling_role: &str,
    account: Option<&str>,
) -> Result<PolicyDocument, PolicyError> {
    let account = match account {
        Some(account) if !arn::is_account(account) => return Err(PolicyError::InvalidAccount(account.to_owned())),
        Some(account) => account,
        None => "*",
    };
    let statement = |sid: &'static str, which: &'static str, name: &str, service: &'static str| {
        arn::check_path_and_name(name, 64).map_err(|error| PolicyError::InvalidRoleName {
            which,
            name: name.to_owned(),
            error,
        })?;
        Ok(Statement {
            sid,
            effect: Effect::Allow,
            principal: None,
            action: vec!["iam:PassRole"],
            resource: vec![format!("arn:aws:iam::{account}:role/{name}")],
            condition: Some(Condition { string_equals: BTreeMap::from([("iam:PassedToService", service)]) }),
        })
    };
    Ok(PolicyDocument::new(vec![
        statement("PassEmrServiceRole", "service role", service_role, EMR_SERVICE)?,
        statement("PassEc2InstanceProfileRole", "EC2 role", ec2_role, EC2_SERVICE)?,
        statement("PassAutoScalingRole", "autoscaling role", autoscaling_role, AUTOSCALING_SERVICE)?,
    ]))
}

/// A validated IAM instance profile ARN, `arn:PARTITION:iam::ACCOUNT:instance-profile/[PATH/]NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceProfileArn {
    text: Box<str>,
}

impl InstanceProfileArn {
    /// Parses and validates an instance profile ARN; the error says which part is wrong, and its
    /// [`help`](PolicyError::help) how to fix it.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        Self::check(text).map_err(|e| PolicyError::InvalidInstanceProfile { reason: e.to_string(), help: e.help() })
    }

    fn check(text: &str) -> Result<Self, InstanceProfileArnError> {
        let path_and_name = arn::iam_resource(text, "instance-profile").map_err(|e| match e {
            RoleArnError::NotARole(kind) => InstanceProfileArnError::NotAnInstanceProfile(kind),
            other => InstanceProfileArnError::Arn(other),
        })?;
        arn::check_path_and_name(path_and_name, 128).map_err(|e| match e {
            RoleArnError::BadNameLength(n) => InstanceProfileArnError::BadNameLength(n),
            RoleArnError::BadNameChar(c) | RoleArnError::BadPathChar(c) => InstanceProfileArnError::BadChar(c),
            other => InstanceProfileArnError::Arn(other),
        })?;
        Ok(InstanceProfileArn { text: text.into() })
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instance profile's name: the last segment, without its path.
    pub fn name(&self) -> &str {
        self.text.rsplit('/').next().unwrap_or(&self.text)
    }

    /// The partition, such as `aws`.
    pub fn partition(&self) -> &str {
        self.text.split(':').nth(1).unwrap_or_default()
    }

    /// The 12-digit account that owns the instance profile.
    pub fn account(&self) -> &str {
        self.text.split(':').nth(4).unwrap_or_default()
    }
}

impl InstanceProfileArn {
    /// The reasons EMR cannot use this instance profile with `role`: the names differ (EMR rejects the
    /// cluster with "invalid instance profile"), or they are in different accounts (an instance profile
    /// only holds a role of its own account). Each is an error diagnostic about no place in the document.
    pub fn mismatches(&self, role: &RoleArn) -> Vec<Diagnostic> {
        let profile = self;
        let diagnostic = |message: String, help: String| {
            Diagnostic::new(Code::InstanceProfileMismatch, Severity::Error, message, help)
        };
        let mut found = Vec::new();
        if profile.name() != role.name() {
            let name = role.name();
            found.push(diagnostic(
            format!("the instance profile `{}` and its role `{name}` have different names", profile.name()),
            format!(
                "EMR rejects such a cluster with \"invalid instance profile\"; create an instance profile named like the role (`aws iam create-instance-profile --instance-profile-name {name}`, then `aws iam add-role-to-instance-profile --instance-profile-name {name} --role-name {name}`) and use it"
            ),
        ));
        }
        if (profile.partition(), profile.account()) != (role.partition(), role.account()) {
            found.push(diagnostic(
                format!("the instance profile `{profile}` and its role `{role}` are in different accounts"),
                "an instance profile can only hold a role of its own account; use a role of that account".to_owned(),
            ));
        }
        found
    }
}

impl fmt::Display for InstanceProfileArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which part of an instance profile ARN is wrong; the message shows the text it quotes through [`Escaped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum InstanceProfileArnError {
    /// A part every IAM ARN has (prefix, partition, service, region, account) or an empty path segment.
    #[error("{0}")]
    Arn(RoleArnError),
    /// The resource is not `instance-profile/...`.
    #[error("the resource type is `{}`, not `instance-profile`", Escaped(.0))]
    NotAnInstanceProfile(String),
    /// The name is empty or longer than 128 characters.
    #[error("the instance profile name has {0} characters; IAM allows 1 to 128")]
    BadNameLength(usize),
    /// The name or path has a character IAM does not allow.
    #[error("the instance profile name or path contains `{}`, which IAM does not allow", Escaped(.0.encode_utf8(&mut [0; 4])))]
    BadChar(char),
}

impl InstanceProfileArnError {
    /// How to fix the ARN.
    fn help(&self) -> String {
        match self {
            InstanceProfileArnError::NotAnInstanceProfile(kind) if kind == "role" => {
                "this is a role ARN; the instance profile ARN has `:instance-profile/NAME` where the role has `:role/NAME`".to_owned()
            }
            InstanceProfileArnError::Arn(RoleArnError::UnknownPartition(_)) => {
                format!("the partition is one of {}", arn::backticked(&arn::PARTITIONS))
            }
            InstanceProfileArnError::Arn(RoleArnError::BadAccount(_)) => {
                "the account ID is exactly 12 digits, leading zeros included".to_owned()
            }
            _ => "an instance profile ARN looks like `arn:aws:iam::123456789012:instance-profile/NAME`; names use only letters, digits and `+=,.@_-`".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_profile_arns_name_the_wrong_part() {
        let ok = InstanceProfileArn::parse("arn:aws:iam::123456789012:instance-profile/emr/EMR_EC2_Custom").unwrap();
        assert_eq!((ok.name(), ok.partition(), ok.account()), ("EMR_EC2_Custom", "aws", "123456789012"));
        let long = format!("arn:aws:iam::123456789012:instance-profile/{}", "n".repeat(128));
        assert!(InstanceProfileArn::parse(&long).is_ok(), "instance profile names have up to 128 characters");
        let cases = [
            ("arn:aws:iam::123456789012:role/r", InstanceProfileArnError::NotAnInstanceProfile("role".into())),
            (
                "arn:aws:iam::1234:instance-profile/p",
                InstanceProfileArnError::Arn(RoleArnError::BadAccount("1234".into())),
            ),
            ("arn:aws:iam::123456789012:instance-profile/", InstanceProfileArnError::BadNameLength(0)),
            ("arn:aws:iam::123456789012:instance-profile/a b", InstanceProfileArnError::BadChar(' ')),
            (
                "arn:aws:iam::123456789012:instance-profile/a//b",
                InstanceProfileArnError::Arn(RoleArnError::EmptyPathSegment),
            ),
            ("ec2-role", InstanceProfileArnError::Arn(RoleArnError::NotAnArn)),
        ];
        for (text, expected) in cases {
            assert_eq!(InstanceProfileArn::check(text), Err(expected), "{text}");
        }
        let role = InstanceProfileArn::parse("arn:aws:iam::123456789012:role/r").unwrap_err();
        assert!(role.help().is_some_and(|h| h.contains(":instance-profile/NAME")), "{role:?}");
    }

    #[test]
    fn pass_role_rejects_bad_accounts_and_names() {
        let (service, ec2, scaling) = (
            PolicyDocument::DEFAULT_SERVICE_ROLE,
            PolicyDocument::DEFAULT_EC2_ROLE,
            PolicyDocument::DEFAULT_AUTOSCALING_ROLE,
        );
        assert_eq!(
            pass_role_policy(service, ec2, scaling, Some("12345")),
            Err(PolicyError::InvalidAccount("12345".into()))
        );
        let arn = "arn:aws:iam::123456789012:role/x";
        assert!(matches!(
            pass_role_policy(service, arn, scaling, None),
            Err(PolicyError::InvalidRoleName { which: "EC2 role", .. })
        ));
        let policy = pass_role_policy("service-role/EMR_Custom", ec2, scaling, None).unwrap();
        assert_eq!(policy.statements[0].resource, ["arn:aws:iam::*:role/service-role/EMR_Custom"]);
    }
}
